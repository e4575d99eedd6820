import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  generateKeyPair,
  jwtVerify,
  SignJWT,
} from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import { uniqueName } from "../support/fixtures.js";
import { createSubscriber, loginAdmin } from "../support/graphql.js";
import {
  createScopedApi,
  createSubscribedApplication,
  FORBIDDEN,
  generateKeys,
  type Issued,
  invalid,
  mustGenerateKeys,
  mustRegenerateToken,
  NO_TOKEN,
  notFound,
  ROTATE_SIGNING_KEY,
  regenerateToken,
  revokeToken,
  run,
  setValidityPeriod,
  tokenById,
  updateTokenSettings,
} from "../support/keys.js";

let t: TestApp;
let adminToken: string;
let alice: { id: string; token: string };
let bob: { id: string; token: string };
let apiId: string;

beforeAll(async () => {
  t = await startTestApp();
  adminToken = await loginAdmin(t);
  alice = await createSubscriber(t, adminToken, uniqueName("alice"));
  bob = await createSubscriber(t, adminToken, uniqueName("bob"));
  ({ id: apiId } = await createScopedApi(t, adminToken, ["read", "write"]));
});
afterAll(() => t.stop());

/** Verifies the way a resource server would (RFC 9068 §4): a fresh remote JWKS, issuer and typ. */
const verifyRemotely = (token: string) =>
  jwtVerify(token, createRemoteJWKSet(new URL(`${t.url}/.well-known/jwks.json`)), {
    issuer: t.app.deps.config.issuer,
    typ: "at+jwt",
  });

const jwksKids = async () => {
  const body = (await (await fetch(`${t.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
  return body.keys.map((k) => k.kid);
};

/** A JWT application of the owner's, with keys of one type. */
async function newJwtKey(
  owner: { token: string } = alice,
  input: Record<string, unknown> = {},
): Promise<{ applicationId: string; issued: Issued; ref: { applicationId: string; keyType: string } }> {
  const app = await createSubscribedApplication(t, owner.token, apiId, { tokenFormat: "JWT" });
  const ref = { applicationId: app.id, keyType: "PRODUCTION" };
  return { applicationId: app.id, issued: await mustGenerateKeys(t, owner.token, { ...ref, ...input }), ref };
}

const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);

describe("JWT access tokens (RFC 9068)", () => {
  let first: { applicationId: string; issued: Issued };

  beforeAll(async () => {
    first = await newJwtKey(alice, { validityPeriod: 600, scopes: ["write", "read"] });
  });

  it("issues a JWT that verifies against the JWKS, with the RFC 9068 claims", async () => {
    const { issued, applicationId } = first;
    const { payload, protectedHeader } = await verifyRemotely(issued.token.accessToken);
    expect(protectedHeader).toEqual({ alg: "RS256", typ: "at+jwt", kid: expect.any(String) });
    expect(payload).toEqual({
      iss: t.app.deps.config.issuer,
      sub: issued.consumerKey,
      aud: t.app.deps.config.issuer,
      client_id: issued.consumerKey,
      jti: issued.token.token.id,
      scope: "read write",
      iat: seconds(issued.token.token.issuedAt),
      exp: seconds(issued.token.token.expiresAt!),
      application_id: applicationId,
      key_type: "PRODUCTION",
    });
    expect(payload.exp! - payload.iat!).toBe(600);
    expect(issued.token).toMatchObject({
      tokenType: "Bearer",
      token: { format: "JWT", kind: "APPLICATION", clientId: issued.consumerKey, scopes: ["read", "write"] },
    });
    // Seconds left when the response was built: at most a few seconds below the validity.
    expect(600 - issued.token.expiresIn!).toBeGreaterThanOrEqual(0);
    expect(600 - issued.token.expiresIn!).toBeLessThanOrEqual(3);
  });

  it("leaves out scope when the key has none", async () => {
    const { issued } = await newJwtKey();
    const { payload } = await verifyRemotely(issued.token.accessToken);
    expect(payload).not.toHaveProperty("scope");
    expect(payload.exp! - payload.iat!).toBe(3600);
  });

  it("keeps verifying after a signing-key rotation, and signs new tokens with the new key", async () => {
    const before = decodeProtectedHeader(first.issued.token.accessToken).kid;
    expect(await run(t, alice.token, ROTATE_SIGNING_KEY)).toEqual(FORBIDDEN);
    expect(await run(t, undefined, ROTATE_SIGNING_KEY)).toEqual(NO_TOKEN);

    const rotated = await run(t, adminToken, ROTATE_SIGNING_KEY);
    expect(rotated).toEqual({ __typename: "RotateSigningKeyPayload", kid: expect.any(String) });
    expect(rotated.kid).not.toBe(before);
    expect(await jwksKids()).toEqual([rotated.kid, before]);

    await expect(verifyRemotely(first.issued.token.accessToken)).resolves.toMatchObject({
      protectedHeader: { kid: before },
      payload: { jti: first.issued.token.token.id },
    });
    const { issued } = await newJwtKey();
    await expect(verifyRemotely(issued.token.accessToken)).resolves.toMatchObject({
      protectedHeader: { kid: rotated.kid },
      payload: { jti: issued.token.token.id },
    });
  });

  it("revokes a JWT by its value (signed by the retired key), once", async () => {
    const { issued } = first;
    const revoked = await revokeToken(t, alice.token, issued.token.accessToken);
    expect(revoked).toMatchObject({
      __typename: "RevokeTokenPayload",
      token: { id: issued.token.token.id, format: "JWT", active: false, revokeReason: "OWNER" },
    });
    expect(await revokeToken(t, alice.token, issued.token.accessToken)).toEqual(revoked);
    const events = await t.app.deps.database.raw(
      "select reason from token_events where token_id = $1 and type = 'REVOKED'",
      [issued.token.token.id],
    );
    expect(events).toEqual([{ reason: "OWNER" }]);
  });

  it("lets an admin revoke a JWT by value", async () => {
    const { issued } = await newJwtKey(bob);
    expect(await revokeToken(t, adminToken, issued.token.accessToken)).toMatchObject({
      token: { id: issued.token.token.id, active: false, revokeReason: "ADMIN" },
    });
  });

  it("answers another subscriber's JWT, a tampered JWT and a forged JWT with NotFoundError", async () => {
    const { issued } = await newJwtKey(bob);
    const value = issued.token.accessToken;
    expect(await revokeToken(t, alice.token, value)).toEqual(notFound("Token", "(value)"));

    const [header, , signature] = value.split(".") as [string, string, string];
    const claims = decodeJwt(value);
    const widened = Buffer.from(JSON.stringify({ ...claims, scope: "admin" })).toString("base64url");
    expect(await revokeToken(t, bob.token, `${header}.${widened}.${signature}`)).toEqual(
      notFound("Token", "(value)"),
    );

    // Same claims and kid, signed by a key that is not ours.
    const { privateKey } = await generateKeyPair("RS256");
    const forged = await new SignJWT(claims)
      .setProtectedHeader(decodeProtectedHeader(value) as { alg: string })
      .sign(privateKey);
    expect(await revokeToken(t, bob.token, forged)).toEqual(notFound("Token", "(value)"));
    expect((await tokenById(t, bob.token, issued.token.token.id))?.active).toBe(true);
  });

  it("marks the previous JWT inactive on regenerateToken", async () => {
    const { issued, ref } = await newJwtKey();
    const next = await mustRegenerateToken(t, alice.token, ref);
    expect(decodeJwt(next.token.accessToken).jti).toBe(next.token.token.id);
    expect(await tokenById(t, alice.token, issued.token.token.id)).toMatchObject({
      active: false,
      revokeReason: "REGENERATED",
    });
  });
});

describe("JWT validity", () => {
  it("refuses a never-expiring validity period: RFC 9068 requires exp", async () => {
    const refused = invalid(
      "validityPeriod",
      "validityPeriod: JWT access tokens must expire (RFC 9068 requires exp)",
    );
    const app = await createSubscribedApplication(t, alice.token, apiId, { tokenFormat: "JWT" });
    expect(
      await generateKeys(t, alice.token, {
        applicationId: app.id,
        keyType: "PRODUCTION",
        validityPeriod: -1,
      }),
    ).toEqual(refused);
    const { ref } = await newJwtKey();
    expect(await regenerateToken(t, alice.token, { ...ref, validityPeriod: -1 })).toEqual(refused);
    expect(await setValidityPeriod(t, alice.token, { ...ref, validityPeriod: -1 })).toEqual(refused);
  });

  it("gives JWTs a one-day expiry when the default validity is never-expiring", async () => {
    expect(await updateTokenSettings(t, adminToken, { applicationValidity: -1 })).toMatchObject({
      settings: { applicationValidity: -1 },
    });
    try {
      const { issued } = await newJwtKey();
      const { payload } = await verifyRemotely(issued.token.accessToken);
      expect(payload.exp! - payload.iat!).toBe(86_400);
    } finally {
      await updateTokenSettings(t, adminToken, { applicationValidity: 3600 });
    }
  });

  it("does not move the expiry of active JWTs with applyToActiveTokens (exp is signed in)", async () => {
    const { issued, ref } = await newJwtKey();
    expect(
      await setValidityPeriod(t, alice.token, { ...ref, validityPeriod: 60, applyToActiveTokens: true }),
    ).toMatchObject({ updatedTokens: 0, key: { validityPeriod: 60 } });
    expect((await tokenById(t, alice.token, issued.token.token.id))?.expiresAt).toBe(
      issued.token.token.expiresAt,
    );
    const next = await mustRegenerateToken(t, alice.token, ref);
    const { payload } = await verifyRemotely(next.token.accessToken);
    expect(payload.exp! - payload.iat!).toBe(60);
  });
});
