import { randomBytes } from "node:crypto";
import { decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import { uniqueName } from "../support/fixtures.js";
import { createSubscriber, LOGIN } from "../support/graphql.js";
import { listTokens, ME, mustRegenerateToken, revokeToken, run, type TokenView } from "../support/keys.js";
import {
  issueEverything,
  type Material,
  type Restarted,
  restartedWith,
  stopRestarted,
} from "../support/material.js";

const K1 = randomBytes(32).toString("hex");
const K2 = randomBytes(32).toString("hex");
const ENCRYPT = { TOKEN_PERSISTENCE: "encrypt", TOKEN_ENCRYPTION_KEYS: `k1:${K1}` };

/** Every credential value, and the random part of each on its own. */
function credentialsOf(m: Material): string[] {
  const opaque = [
    m.owner.token,
    m.login.accessToken,
    m.login.refreshToken,
    m.opaque.token.accessToken,
    m.opaque.consumerSecret!,
    m.rotatedSecret,
    m.jwt.consumerSecret!,
  ];
  const jwt = m.jwt.token.accessToken;
  expect(jwt.split(".")).toHaveLength(3);
  return [...opaque, ...opaque.map((v) => v.split("_")[2]!), jwt, jwt.split(".")[2]!];
}

/** Every row of every table, as text (as in secrets-at-rest.test.ts). */
async function dumpDatabase(t: TestApp): Promise<string> {
  const tables = await t.app.deps.database.raw<{ name: string }>(
    "select table_name as name from information_schema.tables where table_schema = 'public'",
  );
  expect(tables.map((r) => r.name)).toEqual(
    expect.arrayContaining(["access_tokens", "consumer_secrets", "refresh_tokens", "token_events"]),
  );
  const parts: string[] = [];
  for (const { name } of tables) {
    parts.push(JSON.stringify(await t.app.deps.database.raw(`select * from "${name}"`)));
  }
  return parts.join("\n");
}

/** The values the caller reads back through `tokens`, by token id. */
async function valuesSeenBy(t: TestApp, token: string, filter?: Record<string, unknown>) {
  const { nodes } = await listTokens(t, token, { filter, first: 200 });
  return new Map((nodes as TokenView[]).map((n) => [n.id, n.value]));
}

const storage = (t: TestApp, id: string) =>
  t.app.deps.database.raw<{
    token_hash: string;
    token_ciphertext: string | null;
    encryption_key_id: string | null;
  }>("select token_hash, token_ciphertext, encryption_key_id from access_tokens where id = $1", [id]);

describe.each([
  ["hash (default)", {}],
  ["encrypt", ENCRYPT],
])("TOKEN_PERSISTENCE=%s", (mode, env) => {
  let t: TestApp;
  let m: Material;
  beforeAll(async () => {
    t = await startTestApp({ env: { ...env, LOG_LEVEL: "trace" } });
    m = await issueEverything(t);
  });
  afterAll(() => t.stop());

  it("keeps no usable token or consumer secret in the database", async () => {
    const dump = await dumpDatabase(t);
    // The dump does hold the data: the consumer keys and token ids are there.
    expect(dump).toContain(m.opaque.consumerKey);
    expect(dump).toContain(m.jwt.token.token.id);
    for (const credential of credentialsOf(m)) expect(dump).not.toContain(credential);
  });

  it("writes no token or consumer secret to the logs", () => {
    const logs = t.logs.join("");
    expect(logs).toContain("incoming request");
    for (const credential of credentialsOf(m)) expect(logs).not.toContain(credential);
  });

  if (mode === "encrypt") {
    it("lets the owner and an admin read Token.value, equal to each issued token", async () => {
      const expected = new Map([
        [m.opaque.token.token.id, m.opaque.token.accessToken],
        [m.jwt.token.token.id, m.jwt.token.accessToken],
      ]);
      const byOwner = await valuesSeenBy(t, m.owner.token, { kind: "APPLICATION" });
      expect(byOwner).toEqual(expected);
      const ownerLogins = await valuesSeenBy(t, m.owner.token, { kind: "USER" });
      expect([...ownerLogins.values()].sort()).toEqual([m.owner.token, m.login.accessToken].sort());
      const byAdmin = await valuesSeenBy(t, m.adminToken, { applicationId: m.opaque.key.applicationId });
      expect(byAdmin).toEqual(new Map([[m.opaque.token.token.id, m.opaque.token.accessToken]]));
    });

    it("stores AES-256-GCM ciphertext under the current key id, beside the keyed hash", async () => {
      const [row] = await storage(t, m.opaque.token.token.id);
      expect(row).toEqual({
        token_hash: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        // iv (12) + 110-byte token + tag (16) = 138 bytes = 184 base64url characters.
        token_ciphertext: expect.stringMatching(/^[A-Za-z0-9_-]{184}$/),
        encryption_key_id: "k1",
      });
      const ids = await t.app.deps.database.raw<{ encryption_key_id: string | null }>(
        "select distinct encryption_key_id from access_tokens",
      );
      expect(ids).toEqual([{ encryption_key_id: "k1" }]);
    });

    it("keeps a user's token from the owner of the application it was issued through", async () => {
      // Another user logs in through the owner's application (password grant).
      const username = uniqueName("end-user");
      const endUser = await createSubscriber(t, m.adminToken, username);
      const response = await fetch(`${t.url}/token`, {
        method: "POST",
        headers: {
          authorization: `Basic ${Buffer.from(`${m.opaque.consumerKey}:${m.rotatedSecret}`).toString("base64")}`,
          "content-type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ grant_type: "password", username, password: endUser.password }),
      });
      expect(response.status).toBe(200);
      const { access_token: value } = (await response.json()) as { access_token: string };
      const filter = { applicationId: m.opaque.key.applicationId, userId: endUser.id };
      const [id] = [...(await valuesSeenBy(t, m.adminToken, filter)).keys()];
      // The owner sees the token (its application's), but not its value; its user and an admin do.
      expect(await valuesSeenBy(t, m.owner.token, filter)).toEqual(new Map([[id, null]]));
      expect(await valuesSeenBy(t, endUser.token, filter)).toEqual(new Map([[id, value]]));
      expect(await valuesSeenBy(t, m.adminToken, filter)).toEqual(new Map([[id, value]]));
      // The owner's own tokens of that application still read back in the same list.
      const mixed = await valuesSeenBy(t, m.owner.token, { applicationId: m.opaque.key.applicationId });
      expect(mixed.get(m.opaque.token.token.id)).toBe(m.opaque.token.accessToken);
      expect(mixed.get(id!)).toBeNull();
    });

    it("binds each ciphertext to its token: moved onto another row, it does not decrypt", async () => {
      const victim = await mustRegenerateToken(t, m.owner.token, {
        applicationId: m.jwt.key.applicationId,
        keyType: "SANDBOX",
      });
      const [source] = await storage(t, m.opaque.token.token.id);
      await t.app.deps.database.raw("update access_tokens set token_ciphertext = $1 where id = $2", [
        source!.token_ciphertext,
        victim.token.token.id,
      ]);
      const values = await valuesSeenBy(t, m.owner.token, { applicationId: m.jwt.key.applicationId });
      expect(values.get(victim.token.token.id)).toBeNull();
    });
  } else {
    it("stores only keyed hashes: Token.value is null for owner and admin", async () => {
      for (const caller of [m.owner.token, m.adminToken]) {
        const values = await valuesSeenBy(t, caller);
        expect(values.size).toBeGreaterThanOrEqual(4);
        expect([...values.values()].every((v) => v === null)).toBe(true);
      }
      const [row] = await storage(t, m.opaque.token.token.id);
      expect(row).toEqual({
        token_hash: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
        token_ciphertext: null,
        encryption_key_id: null,
      });
      expect(
        await t.app.deps.database.raw(
          "select count(*)::int as n from access_tokens where token_ciphertext is not null or encryption_key_id is not null",
        ),
      ).toEqual([{ n: 0 }]);
    });
  }
});

describe("rotating the token encryption key", () => {
  // The new key first (it encrypts), the old one still in the ring (it decrypts).
  let state: Restarted;
  beforeAll(async () => {
    state = await restartedWith(ENCRYPT, {
      TOKEN_PERSISTENCE: "encrypt",
      TOKEN_ENCRYPTION_KEYS: `k2:${K2},k1:${K1}`,
    });
  });
  afterAll(() => stopRestarted(state));

  it("keeps console tokens issued before working", async () => {
    expect(await run(state.after, state.m.owner.token, ME)).toEqual({
      __typename: "User",
      id: state.m.owner.id,
      username: state.m.owner.username,
    });
  });

  it("still decrypts the values stored under the old key", async () => {
    const values = await valuesSeenBy(state.after, state.m.owner.token, { kind: "APPLICATION" });
    expect(values).toEqual(
      new Map([
        [state.m.opaque.token.token.id, state.m.opaque.token.accessToken],
        [state.m.jwt.token.token.id, state.m.jwt.token.accessToken],
      ]),
    );
    expect((await storage(state.after, state.m.opaque.token.token.id))[0]?.encryption_key_id).toBe("k1");
  });

  it("finds an application token issued before by its value (revokeToken)", async () => {
    expect(
      await revokeToken(state.after, state.m.owner.token, state.m.opaque.token.accessToken),
    ).toMatchObject({
      __typename: "RevokeTokenPayload",
      token: { id: state.m.opaque.token.token.id, active: false, revokeReason: "OWNER" },
    });
  });

  it("stores new tokens under the new key id, readable again", async () => {
    const next = await mustRegenerateToken(state.after, state.m.owner.token, {
      applicationId: state.m.opaque.key.applicationId,
      keyType: "PRODUCTION",
    });
    const { login } = await state.after
      .client()
      .request<any>(LOGIN, { input: { username: state.m.owner.username, password: state.m.owner.password } });
    const loginRow = await state.after.app.deps.database.raw<{ encryption_key_id: string }>(
      "select encryption_key_id from access_tokens where user_id = $1 order by issued_at desc limit 1",
      [state.m.owner.id],
    );
    expect(loginRow).toEqual([{ encryption_key_id: "k2" }]);
    expect((await storage(state.after, next.token.token.id))[0]?.encryption_key_id).toBe("k2");
    const values = await valuesSeenBy(state.after, state.m.owner.token);
    expect(values.get(next.token.token.id)).toBe(next.token.accessToken);
    expect([...values.values()]).toContain(login.accessToken);
    // The old tokens keep their key id: nothing was re-encrypted or lost.
    expect((await storage(state.after, state.m.jwt.token.token.id))[0]?.encryption_key_id).toBe("k1");
  });
});

describe("moving from the generated encryption key to TOKEN_ENCRYPTION_KEYS", () => {
  // No key given: one is generated (DATA_DIR on PGlite, the database on PostgreSQL); then what
  // the startup warning asks for: the operator supplies keys.
  let state: Restarted;
  beforeAll(async () => {
    state = await restartedWith({ TOKEN_PERSISTENCE: "encrypt" }, ENCRYPT);
  });
  afterAll(() => stopRestarted(state));

  it("still decrypts the values the generated key sealed", async () => {
    expect((await storage(state.after, state.m.opaque.token.token.id))[0]?.encryption_key_id).toBe(
      "generated",
    );
    const values = await valuesSeenBy(state.after, state.m.owner.token, { kind: "APPLICATION" });
    expect(values).toEqual(
      new Map([
        [state.m.opaque.token.token.id, state.m.opaque.token.accessToken],
        [state.m.jwt.token.token.id, state.m.jwt.token.accessToken],
      ]),
    );
  });

  it("keeps issuing JWTs with the signing key the generated key sealed", async () => {
    const next = await mustRegenerateToken(state.after, state.m.owner.token, {
      applicationId: state.m.jwt.key.applicationId,
      keyType: "SANDBOX",
    });
    expect(decodeProtectedHeader(next.token.accessToken).kid).toBe(
      decodeProtectedHeader(state.m.jwt.token.accessToken).kid,
    );
  });

  it("seals new values only under the configured key", async () => {
    const next = await mustRegenerateToken(state.after, state.m.owner.token, {
      applicationId: state.m.opaque.key.applicationId,
      keyType: "PRODUCTION",
    });
    expect((await storage(state.after, next.token.token.id))[0]?.encryption_key_id).toBe("k1");
    const values = await valuesSeenBy(state.after, state.m.owner.token, {
      applicationId: state.m.opaque.key.applicationId,
    });
    expect(values.get(next.token.token.id)).toBe(next.token.accessToken);
  });
});

describe("losing the key that sealed the active JWT signing key", () => {
  // k1 is gone from the ring: nothing k1 sealed can be decrypted any more.
  let state: Restarted;
  beforeAll(async () => {
    state = await restartedWith(ENCRYPT, { TOKEN_PERSISTENCE: "encrypt", TOKEN_ENCRYPTION_KEYS: `k2:${K2}` });
  });
  afterAll(() => stopRestarted(state));

  it("rotates to a new signing key, keeps the old one published and warns without secrets", async () => {
    const oldKid = decodeProtectedHeader(state.m.jwt.token.accessToken).kid!;
    const next = await mustRegenerateToken(state.after, state.m.owner.token, {
      applicationId: state.m.jwt.key.applicationId,
      keyType: "SANDBOX",
    });
    const newKid = decodeProtectedHeader(next.token.accessToken).kid!;
    expect(newKid).not.toBe(oldKid);
    const jwks = (await (await fetch(`${state.after.url}/.well-known/jwks.json`)).json()) as {
      keys: { kid: string }[];
    };
    expect(jwks.keys.map((k) => k.kid)).toEqual([newKid, oldKid]);
    const [row] = await state.after.app.deps.database.raw<{ encryption_key_id: string }>(
      "select encryption_key_id from signing_keys where kid = $1",
      [newKid],
    );
    expect(row).toEqual({ encryption_key_id: "k2" });

    const warnings = state.after.logs.map((line) => JSON.parse(line)).filter((entry) => entry.level === 40);
    expect(warnings).toContainEqual(
      expect.objectContaining({
        kid: oldKid,
        encryptionKeyId: "k1",
        msg: "the active JWT signing key cannot be decrypted with the key ring: rotating to a new one",
      }),
    );
    const logs = state.after.logs.join("");
    for (const secret of [K1, K2, next.token.accessToken, state.m.jwt.token.accessToken]) {
      expect(logs).not.toContain(secret);
    }
  });

  it("reads the values k1 sealed as null, without failing", async () => {
    const values = await valuesSeenBy(state.after, state.m.owner.token, {
      applicationId: state.m.opaque.key.applicationId,
    });
    expect(values.get(state.m.opaque.token.token.id)).toBeNull();
  });
});
