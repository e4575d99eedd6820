import { randomUUID } from "node:crypto";
import { gql } from "graphql-request";
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  generateKeyPair,
  type JWTPayload,
  jwtVerify,
  SignJWT,
  UnsecuredJWT,
} from "jose";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { open } from "../../src/domain/encryption.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { dropDatabaseAt } from "../support/database.js";
import { createSubscriber, ERROR_FIELDS, loginAdmin } from "../support/graphql.js";
import { run, setValidityPeriod, updateTokenSettings } from "../support/keys.js";
import { clientCredentials, createWorld, introspect, newClient, type World } from "../support/oauth.js";

const ROTATE = gql`
  mutation RotateSigningKey {
    rotateSigningKey {
      __typename
      ... on RotateSigningKeyPayload { kid }
      ${ERROR_FIELDS}
    }
  }
`;

/** RFC 7518 §6.3.2 / §6.2.2 / RFC 8037: members only a private JWK has. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
const DAY = 86_400;

/** RFC 9068 §2.2 claims, as the token service would supply them. */
function accessClaims(t: TestApp, overrides: JWTPayload = {}): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: t.app.deps.config.issuer,
    sub: "user-42",
    aud: "https://api.example.test",
    exp: now + 300,
    iat: now,
    jti: randomUUID(),
    client_id: "client-42",
    scope: "read write",
    ...overrides,
  };
}

const sign = (t: TestApp, overrides: JWTPayload = {}) =>
  t.app.deps.signer.signAccessToken(accessClaims(t, overrides));

async function getJwks(t: TestApp) {
  const response = await fetch(`${t.url}/.well-known/jwks.json`);
  return { status: response.status, headers: response.headers, body: (await response.json()) as any };
}

const kidsOf = async (t: TestApp) => ((await getJwks(t)).body.keys as { kid: string }[]).map((k) => k.kid);

/** Verifies the way a resource server would (RFC 9068 §4): a fresh remote JWKS, issuer and typ. */
const verifyRemotely = (t: TestApp, token: string) =>
  jwtVerify(token, createRemoteJWKSet(new URL(`${t.url}/.well-known/jwks.json`)), {
    issuer: t.app.deps.config.issuer,
    typ: "at+jwt",
  });

const kidOf = (token: string) => decodeProtectedHeader(token).kid;

describe("signing keys and the JWKS endpoint", () => {
  let t: TestApp;
  let adminToken: string;
  let firstToken: string;
  let firstKid: string;
  let secondKid: string;
  beforeAll(async () => {
    t = await startTestApp();
    adminToken = await loginAdmin(t);
  });
  afterAll(() => t.stop());

  it("signs RFC 9068 access tokens with typ at+jwt and exactly the caller's claims", async () => {
    const claims = accessClaims(t);
    firstToken = await t.app.deps.signer.signAccessToken(claims);
    const header = decodeProtectedHeader(firstToken);
    expect(header).toEqual({ alg: "RS256", kid: expect.any(String), typ: "at+jwt" });
    firstKid = header.kid!;
    const { payload, protectedHeader } = await verifyRemotely(t, firstToken);
    expect(payload).toEqual(claims);
    expect(protectedHeader.kid).toBe(firstKid);
  });

  it("publishes exactly one public key, cacheable for a minute", async () => {
    const { status, headers, body } = await getJwks(t);
    expect(status).toBe(200);
    expect(headers.get("content-type")).toMatch(/^application\/jwk-set\+json/);
    expect(headers.get("cache-control")).toBe("public, max-age=60");
    expect(body).toEqual({
      keys: [{ kty: "RSA", kid: firstKid, alg: "RS256", use: "sig", n: expect.any(String), e: "AQAB" }],
    });
    for (const member of PRIVATE_MEMBERS) expect(body.keys[0]).not.toHaveProperty(member);
  });

  it("keeps signing with the same key until it is rotated", async () => {
    const tokens = await Promise.all([sign(t), sign(t), sign(t)]);
    expect(tokens.map(kidOf)).toEqual([firstKid, firstKid, firstKid]);
    const rows = await t.app.deps.database.raw("select kid from signing_keys");
    expect(rows).toEqual([{ kid: firstKid }]);
  });

  it("refuses rotation without a token and for a subscriber, and keeps the key", async () => {
    const anonymous = await t.client().request<any>(ROTATE);
    expect(anonymous.rotateSigningKey).toEqual({
      __typename: "UnauthenticatedError",
      code: "UNAUTHENTICATED",
      message: "authentication required: send Authorization: Bearer <access token>",
    });
    const subscriber = await createSubscriber(t, adminToken, "jwks-sub");
    const forbidden = await t.client(subscriber.token).request<any>(ROTATE);
    expect(forbidden.rotateSigningKey).toEqual({
      __typename: "ForbiddenError",
      code: "FORBIDDEN",
      message: "this operation requires the admin role",
    });
    expect(await kidsOf(t)).toEqual([firstKid]);
  });

  it("rotates for an admin: both keys published, old and new tokens verify", async () => {
    const { rotateSigningKey } = await t.client(adminToken).request<any>(ROTATE);
    expect(rotateSigningKey).toEqual({ __typename: "RotateSigningKeyPayload", kid: expect.any(String) });
    secondKid = rotateSigningKey.kid;
    expect(secondKid).not.toBe(firstKid);
    // The new key is listed first: verifiers that try keys in order find it soonest.
    expect(await kidsOf(t)).toEqual([secondKid, firstKid]);

    await expect(verifyRemotely(t, firstToken)).resolves.toMatchObject({
      protectedHeader: { kid: firstKid },
    });
    const next = await sign(t);
    expect(kidOf(next)).toBe(secondKid);
    await expect(verifyRemotely(t, next)).resolves.toMatchObject({ protectedHeader: { kid: secondKid } });
    expect(await t.app.deps.signer.verifyAccessToken(firstToken)).not.toBeNull();
    expect(await t.app.deps.signer.verifyAccessToken(next)).not.toBeNull();

    const rows = await t.app.deps.database.raw<{ kid: string; retired: boolean }>(
      "select kid, retired_at is not null as retired from signing_keys order by created_at",
    );
    expect(rows).toEqual([
      { kid: firstKid, retired: true },
      { kid: secondKid, retired: false },
    ]);
  });

  it("decides at retirement how long a retired key stays published, and later settings change nothing", async () => {
    const { raw } = t.app.deps.database;
    const [row] = await raw<{ published: number }>(
      "select extract(epoch from publish_until - retired_at)::float8 as published from signing_keys where kid = $1",
      [firstKid],
    );
    // Its JWTs expire within minutes: a day, for verifiers' JWKS caches.
    expect(row!.published).toBeGreaterThanOrEqual(DAY);
    expect(row!.published).toBeLessThan(DAY + 5);

    // Neither longer defaults nor time passing since the retirement move that end.
    await raw(
      `update settings set value = jsonb_set(value, '{userValidity}', '${3 * DAY}') where key = 'token'`,
    );
    await raw("update signing_keys set retired_at = now() - interval '2 days' where kid = $1", [firstKid]);
    expect(await kidsOf(t)).toEqual([secondKid, firstKid]);
    await raw(`update settings set value = jsonb_set(value, '{userValidity}', '3600') where key = 'token'`);
    expect(await kidsOf(t)).toEqual([secondKid, firstKid]);
  });

  it("drops a retired key from the JWKS, and stops trusting it, once its publication ends", async () => {
    await t.app.deps.database.raw(
      "update signing_keys set publish_until = now() - interval '1 second' where retired_at is not null",
    );
    expect(await kidsOf(t)).toEqual([secondKid]);
    expect(await t.app.deps.signer.verifyAccessToken(firstToken)).toBeNull();
    await expect(verifyRemotely(t, firstToken)).rejects.toThrow();
  });

  it("stores the private key only encrypted, bound to its kid", async () => {
    const rows = await t.app.deps.database.raw<{
      kid: string;
      public_jwk: Record<string, unknown>;
      private_jwk_ciphertext: string;
      encryption_key_id: string;
    }>("select kid, public_jwk, private_jwk_ciphertext, encryption_key_id from signing_keys");
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      for (const member of PRIVATE_MEMBERS) expect(row.public_jwk).not.toHaveProperty(member);
      expect(row.private_jwk_ciphertext).not.toContain('"d":');
      expect(Buffer.from(row.private_jwk_ciphertext, "base64url").toString("latin1")).not.toContain('"d":');
      const sealed = { keyId: row.encryption_key_id, ciphertext: row.private_jwk_ciphertext };
      const ring = t.app.deps.secrets.encryption;
      const privateJwk = JSON.parse(open(ring, sealed, `signing-key:${row.kid}`)!);
      expect(privateJwk).toMatchObject({ kty: "RSA", n: row.public_jwk.n, d: expect.any(String) });
      // Bound to its kid: the ciphertext cannot be swapped onto another key's row.
      expect(open(ring, sealed, "signing-key:another-kid")).toBeNull();
      expect(t.logs.join("")).not.toContain(privateJwk.d);
    }
  });
});

describe("verifyAccessToken", () => {
  let t: TestApp;
  let valid: string;
  beforeAll(async () => {
    t = await startTestApp();
    valid = await sign(t);
  });
  afterAll(() => t.stop());

  it("returns the claims of a valid token", async () => {
    expect(await t.app.deps.signer.verifyAccessToken(valid)).toMatchObject({
      sub: "user-42",
      scope: "read write",
    });
  });

  it.each([
    ["an empty string", ""],
    ["garbage", "not a jwt"],
    ["three empty segments", ".."],
    ["three junk segments", "a.b.c"],
    ["a header that is not JSON", `${Buffer.from("{").toString("base64url")}.e30.c2ln`],
    ["a huge string", "x".repeat(100_000)],
  ])("returns null for %s", async (_name, input) => {
    expect(await t.app.deps.signer.verifyAccessToken(input)).toBeNull();
  });

  it("returns null for a token whose payload was tampered with", async () => {
    const [header, payload, signature] = valid.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
    const forged = Buffer.from(JSON.stringify({ ...claims, scope: "admin" })).toString("base64url");
    expect(await t.app.deps.signer.verifyAccessToken(`${header}.${forged}.${signature}`)).toBeNull();
  });

  it("returns null for a token signed by an unknown key, even one claiming our kid", async () => {
    const { privateKey } = await generateKeyPair("RS256");
    const kid = kidOf(valid)!;
    for (const header of [
      { alg: "RS256", typ: "at+jwt", kid },
      { alg: "RS256", typ: "at+jwt", kid: "unknown-kid" },
    ]) {
      const foreign = await new SignJWT(accessClaims(t)).setProtectedHeader(header).sign(privateKey);
      expect(await t.app.deps.signer.verifyAccessToken(foreign)).toBeNull();
    }
  });

  it("returns null for an unsigned token (alg none)", async () => {
    const unsigned = new UnsecuredJWT(accessClaims(t)).encode();
    expect(await t.app.deps.signer.verifyAccessToken(unsigned)).toBeNull();
  });

  it("returns null for an expired token, another issuer and a token without exp", async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await sign(t, { iat: now - 600, exp: now - 300 });
    const otherIssuer = await sign(t, { iss: "https://elsewhere.example" });
    const { exp: _exp, ...withoutExp } = accessClaims(t);
    const noExp = await t.app.deps.signer.signAccessToken(withoutExp);
    for (const token of [expired, otherIssuer, noExp]) {
      expect(await t.app.deps.signer.verifyAccessToken(token)).toBeNull();
    }
  });
});

describe("signing key lifecycle", () => {
  const apps: TestApp[] = [];
  afterAll(async () => {
    for (const app of apps.reverse()) await app.stop();
    // The restarted app runs on the first one's database, which neither drops (no-op for the rest).
    for (const app of apps) await dropDatabaseAt(app.databaseUrl);
  });

  it("creates one key when the first signatures race, and keeps it across a restart", async () => {
    const first = await startTestApp();
    const tokens = await Promise.all(Array.from({ length: 8 }, () => sign(first)));
    const kid = kidOf(tokens[0]!);
    expect(new Set(tokens.map(kidOf))).toEqual(new Set([kid]));
    await first.stop({ keepData: true });

    const second = await startTestApp({ dataDir: first.dataDir, databaseUrl: first.databaseUrl });
    apps.push(second);
    // The same private key signs after the restart: it was kept, not regenerated.
    expect(kidOf(await sign(second))).toBe(kid);
    expect(await kidsOf(second)).toEqual([kid]);
    await expect(verifyRemotely(second, tokens[0]!)).resolves.toBeDefined();
    expect(await second.app.deps.signer.verifyAccessToken(tokens[0]!)).not.toBeNull();
  });

  it("rotates on its own once the key is older than JWT_SIGNING_KEY_MAX_AGE", async () => {
    const t = await startTestApp({ env: { JWT_SIGNING_KEY_MAX_AGE: "1" } });
    apps.push(t);
    const before = await sign(t);
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const after = await sign(t);
    expect(kidOf(after)).not.toBe(kidOf(before));
    // Both published. Reading the JWKS may rotate once more on a slow machine (the key `after`
    // was signed with can be a second old by then), so the list may lead with a newer key.
    const kids = await kidsOf(t);
    expect(kids.slice(-2)).toEqual([kidOf(after), kidOf(before)]);
    await expect(verifyRemotely(t, before)).resolves.toBeDefined();
    await expect(verifyRemotely(t, after)).resolves.toBeDefined();
  });

  // PGlite only: the read it prevents would hang there alone (the transaction holds its one
  // connection), and only there does the database's now() follow the clock the test moves.
  it.skipIf(Boolean(process.env.DATABASE_URL))(
    "rotates in ready() a key due within seconds, so that the signature after it reads nothing",
    async () => {
      const t = await startTestApp({ env: { JWT_SIGNING_KEY_MAX_AGE: "200" } });
      apps.push(t);
      const first = kidOf(await sign(t));
      const start = Date.now();
      const now = vi.spyOn(Date, "now");
      try {
        // Five seconds before the key is due, ready() (before a transaction that signs) replaces it.
        now.mockReturnValue(start + 195_000);
        await t.app.deps.signer.ready();
        // The signature, after the old key's due time, has the new one at hand.
        now.mockReturnValue(start + 201_000);
        t.resetStatements();
        const next = kidOf(await sign(t));
        expect(next).not.toBe(first);
        expect(t.statements.filter((sql) => /^select .* from "signing_keys"/i.test(sql))).toEqual([]);
      } finally {
        now.mockRestore();
      }
    },
  );

  it("signs with the algorithm JWT_SIGNING_ALG names (ES256)", async () => {
    const t = await startTestApp({ env: { JWT_SIGNING_ALG: "ES256" } });
    apps.push(t);
    const token = await sign(t);
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: "ES256", typ: "at+jwt" });
    const { body } = await getJwks(t);
    expect(body.keys).toEqual([
      {
        kty: "EC",
        crv: "P-256",
        kid: kidOf(token),
        alg: "ES256",
        use: "sig",
        x: expect.any(String),
        y: expect.any(String),
      },
    ]);
    await expect(verifyRemotely(t, token)).resolves.toBeDefined();
  });

  it.runIf(process.env.DATABASE_URL)(
    "shares one key between instances on one PostgreSQL, and rotation reaches every instance",
    async () => {
      const a = await startTestApp();
      apps.push(a);
      const b = await startTestApp({ databaseUrl: a.databaseUrl });
      // Stopped before `a`, whose stop drops the database.
      apps.push(b);
      const [fromA, fromB] = await Promise.all([sign(a), sign(b)]);
      expect(kidOf(fromA)).toBe(kidOf(fromB));
      expect(await b.app.deps.signer.verifyAccessToken(fromA)).not.toBeNull();

      const { kid } = await a.app.deps.signer.rotate();
      const rotated = await sign(a);
      expect(kidOf(rotated)).toBe(kid);
      // b learns the new key at once: when verifying a token signed with it, and in its JWKS.
      expect(await b.app.deps.signer.verifyAccessToken(rotated)).not.toBeNull();
      expect(await kidsOf(b)).toEqual([kid, kidOf(fromA)]);
    },
  );
});

describe("retired keys and the JWTs they signed", () => {
  let t: TestApp;
  let world: World;
  beforeAll(async () => {
    t = await startTestApp({ issuerIsUrl: true });
    world = await createWorld(t);
  });
  afterAll(() => t.stop());

  /** When the key leaves the JWKS once retired, in seconds since the epoch (Infinity: never). */
  const publishUntil = async (kid: string) =>
    (
      await t.app.deps.database.raw<{ until: number }>(
        "select extract(epoch from publish_until)::float8 as until from signing_keys where kid = $1",
        [kid],
      )
    )[0]?.until;

  it("keeps a retired key published while a JWT it signed is valid, after its key's validity and the defaults are lowered", async () => {
    const c = await newClient(world, { tokenFormat: "JWT", validityPeriod: 10 * DAY });
    const jwt = (await clientCredentials(world, c)).access_token;
    const kid = kidOf(jwt)!;
    const { exp } = (await verifyRemotely(t, jwt)).payload;
    const rotated = await run(t, world.adminToken, ROTATE);
    expect(rotated).toEqual({ __typename: "RotateSigningKeyPayload", kid: expect.any(String) });
    // Later tokens get an hour; an issued JWT keeps its exp (it cannot be moved).
    expect(
      await setValidityPeriod(t, world.owner.token, {
        applicationId: c.applicationId,
        keyType: "PRODUCTION",
        validityPeriod: 3600,
      }),
    ).toMatchObject({ __typename: "SetValidityPeriodPayload" });
    expect(
      await updateTokenSettings(t, world.adminToken, { applicationValidity: 3600, userValidity: 3600 }),
    ).toMatchObject({ __typename: "UpdateTokenSettingsPayload" });
    // Two days after the rotation (more than a day, less than the JWT's ten).
    await t.app.deps.database.raw(
      "update signing_keys set retired_at = now() - interval '2 days' where kid = $1",
      [kid],
    );

    expect(await kidsOf(t)).toEqual([rotated.kid, kid]);
    await expect(verifyRemotely(t, jwt)).resolves.toMatchObject({ payload: { exp } });
    expect(await introspect(world, c, jwt)).toMatchObject({ active: true, exp, client_id: c.clientId });
    expect(await publishUntil(kid)).toBeGreaterThanOrEqual(exp!);
  });

  it("keeps a retired key published for the JWTs it signed even when the end written as it signed was lost", async () => {
    const c = await newClient(world, { tokenFormat: "JWT", validityPeriod: 10 * DAY });
    const jwt = (await clientCredentials(world, c)).access_token;
    const kid = kidOf(jwt)!;
    const { exp } = (await verifyRemotely(t, jwt)).payload;
    // As if the instance had stopped before its write of the end landed.
    await t.app.deps.database.raw("update signing_keys set publish_until = now() where kid = $1", [kid]);
    expect(await run(t, world.adminToken, ROTATE)).toMatchObject({ __typename: "RotateSigningKeyPayload" });
    expect(await publishUntil(kid)).toBeGreaterThanOrEqual(exp!);
    await t.app.deps.database.raw(
      "update signing_keys set retired_at = now() - interval '2 days' where kid = $1",
      [kid],
    );
    expect(await kidsOf(t)).toContain(kid);
    await expect(verifyRemotely(t, jwt)).resolves.toMatchObject({ payload: { exp } });
  });

  it("keeps a key that signed a JWT without exp published for ever", async () => {
    const { exp: _exp, ...claims } = accessClaims(t);
    const forever = await t.app.deps.signer.signAccessToken(claims);
    const kid = kidOf(forever)!;
    const { kid: next } = await t.app.deps.signer.rotate();
    await t.app.deps.database.raw(
      "update signing_keys set retired_at = now() - interval '400 days' where kid = $1",
      [kid],
    );
    expect(await publishUntil(kid)).toBe(Number.POSITIVE_INFINITY);
    const kids = await kidsOf(t);
    expect(kids[0]).toBe(next);
    expect(kids).toContain(kid);
    await expect(verifyRemotely(t, forever)).resolves.toBeDefined();
  });

  it.runIf(process.env.DATABASE_URL)(
    "keeps a key published for a JWT that an instance yet to notice the rotation signs with it",
    async () => {
      const other = await startTestApp({ databaseUrl: t.databaseUrl, issuerIsUrl: true });
      try {
        const kid = kidOf(await sign(other))!;
        // Rotated elsewhere: `other` keeps signing with the key it holds until it checks again.
        const { kid: next } = await t.app.deps.signer.rotate();
        expect(next).not.toBe(kid);
        const exp = Math.floor(Date.now() / 1000) + 30 * DAY;
        const late = await sign(other, { exp });
        expect(kidOf(late)).toBe(kid);
        await other.app.deps.signer.ready();
        // Written without delaying the signature; ready() (before the next one) waits for it.
        expect(await publishUntil(kid)).toBeGreaterThanOrEqual(exp);
        await t.app.deps.database.raw(
          "update signing_keys set retired_at = now() - interval '2 days' where kid = $1",
          [kid],
        );
        expect(await kidsOf(t)).toContain(kid);
      } finally {
        // Its database is `t`'s: only `t` drops it.
        await other.stop();
      }
    },
  );
});
