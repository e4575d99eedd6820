import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVENT_ORDER_LOCK } from "../../src/domain/token-event.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { UNKNOWN_ID, uniqueName } from "../support/fixtures.js";
import { createSubscriber, loginAdmin } from "../support/graphql.js";
import {
  ACTIVE_SQL,
  activeApplicationTokenIds,
  BAD_TOKEN,
  clientCredentials,
  createScopedApi,
  createSubscribedApplication,
  eventsOf,
  generateKeys,
  type Issued,
  invalid,
  keysOf,
  mustGenerateKeys,
  mustRegenerateToken,
  NO_TOKEN,
  notFound,
  type Outcome,
  regenerateConsumerSecret,
  regenerateToken,
  setValidityPeriod,
  sleep,
  type TokenView,
  tokenById,
  waitFor,
} from "../support/keys.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const ACCESS_TOKEN = /^tmat_[0-9a-f]{32}_[0-9a-f]{72}$/;
const CONSUMER_SECRET = /^tmcs_[0-9a-f]{32}_[0-9a-f]{72}$/;
/** settings.ts MAX_SECONDS: the cap when the admin set none. */
const MAX_SECONDS = 10 * 365 * 86400;
/** Grace periods the tests wait out (seconds): long enough to observe, short enough to wait. */
const GRACE = 2;

interface Subscriber {
  id: string;
  token: string;
}

let t: TestApp;
let adminToken: string;
let alice: Subscriber;
let bob: Subscriber;
let apiId: string;

beforeAll(async () => {
  // A fast sweeper, so that grace periods end visibly within a test.
  t = await startTestApp({ env: { SWEEPER_INTERVAL_MS: "100" } });
  adminToken = await loginAdmin(t);
  alice = await createSubscriber(t, adminToken, uniqueName("alice"));
  bob = await createSubscriber(t, adminToken, uniqueName("bob"));
  ({ id: apiId } = await createScopedApi(t, adminToken, ["read", "write"]));
});
afterAll(() => t.stop());

const raw = <T = Record<string, unknown>>(sql: string, params?: unknown[]) =>
  t.app.deps.database.raw<T>(sql, params);

/** A new application of Alice's subscribed to the API (scopes read, write). */
const newApplication = (owner: Subscriber = alice) => createSubscribedApplication(t, owner.token, apiId);

/** A new application of the owner's with PRODUCTION keys generated. */
async function newKey(owner: Subscriber = alice, input: Record<string, unknown> = {}) {
  const app = await newApplication(owner);
  const issued = await mustGenerateKeys(t, owner.token, {
    applicationId: app.id,
    keyType: "PRODUCTION",
    ...input,
  });
  return { app, issued, ref: { applicationId: app.id, keyType: "PRODUCTION" } };
}

const idOfValue = (value: string) => {
  const hex = value.split("_")[1]!;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};
const lifetimeMs = (token: TokenView) => Date.parse(token.expiresAt!) - Date.parse(token.issuedAt);
const keyCount = async (applicationId: string) =>
  (
    await raw<{ n: number }>("select count(*)::int as n from application_keys where application_id = $1", [
      applicationId,
    ])
  )[0]!.n;
const tokenRow = async (id: string) =>
  (
    await raw<{
      revoked: boolean;
      revoked_when_scheduled: boolean | null;
      revoke_reason: string | null;
      scheduled_ms: number | null;
      active: boolean;
    }>(
      `select revoked_at is not null as revoked, revoked_at = revoke_scheduled_at as revoked_when_scheduled,
              revoke_reason, (extract(epoch from revoke_scheduled_at) * 1000)::float8 as scheduled_ms,
              (${ACTIVE_SQL}) as active
       from access_tokens where id = $1`,
      [id],
    )
  )[0]!;

describe("generateKeys", () => {
  it("gives the owner a consumer key, a consumer secret and a first application token", async () => {
    const app = await newApplication();
    const result = (await generateKeys(t, alice.token, {
      applicationId: app.id,
      keyType: "PRODUCTION",
    })) as Issued;
    expect(result).toEqual({
      __typename: "GenerateKeysPayload",
      consumerKey: expect.stringMatching(/^[A-Za-z0-9_-]{24}$/),
      consumerSecret: expect.stringMatching(CONSUMER_SECRET),
      key: {
        id: expect.stringMatching(UUID),
        applicationId: app.id,
        keyType: "PRODUCTION",
        consumerKey: result.consumerKey,
        allowedDomains: [],
        validityPeriod: null,
        scopes: [],
        grantTypes: ["client_credentials", "refresh_token"],
        secrets: [
          {
            id: idOfValue(result.consumerSecret!),
            createdAt: expect.stringMatching(ISO),
            expiresAt: null,
            lastUsedAt: null,
            revokedAt: null,
            active: true,
          },
        ],
      },
      token: {
        accessToken: expect.stringMatching(ACCESS_TOKEN),
        tokenType: "Bearer",
        expiresIn: expect.any(Number),
        token: {
          id: idOfValue(result.token.accessToken),
          kind: "APPLICATION",
          format: "OPAQUE",
          keyType: "PRODUCTION",
          applicationId: app.id,
          userId: null,
          clientId: result.consumerKey,
          userStoreDomain: "PRIMARY",
          scopes: [],
          issuedAt: expect.stringMatching(ISO),
          expiresAt: expect.stringMatching(ISO),
          revokedAt: null,
          revokeReason: null,
          revokeScheduledAt: null,
          active: true,
          value: null,
        },
      },
    });
    // The default application validity (3600 s) from the token settings.
    expect(lifetimeMs(result.token.token)).toBe(3_600_000);
    // Seconds left when the response was built: at most a few seconds below the validity.
    expect(3600 - result.token.expiresIn!).toBeGreaterThanOrEqual(0);
    expect(3600 - result.token.expiresIn!).toBeLessThanOrEqual(3);
    expect(await keysOf(t, alice.token, app.id)).toEqual([result.key]);
  });

  it("stores the requested validity, domains (normalised), scopes and grant types, and issues accordingly", async () => {
    const app = await newApplication();
    const { key, token } = await mustGenerateKeys(t, alice.token, {
      applicationId: app.id,
      keyType: "SANDBOX",
      validityPeriod: 120,
      allowedDomains: ["api.example.com", "*.Example.ORG", "localhost:8080", "API.example.com"],
      scopes: ["write", "read", "write"],
      grantTypes: ["password", "client_credentials", "password"],
    });
    expect(key).toMatchObject({
      keyType: "SANDBOX",
      validityPeriod: 120,
      allowedDomains: ["api.example.com", "*.example.org", "localhost:8080"],
      scopes: ["read", "write"],
      grantTypes: ["password", "client_credentials"],
    });
    expect(token.token).toMatchObject({ keyType: "SANDBOX", scopes: ["read", "write"] });
    expect(lifetimeMs(token.token)).toBe(120_000);
    expect(
      await raw(
        "select validity_period, allowed_domains, scopes, grant_types from application_keys where id = $1",
        [key.id],
      ),
    ).toEqual([
      {
        validity_period: 120,
        allowed_domains: ["api.example.com", "*.example.org", "localhost:8080"],
        scopes: ["read", "write"],
        grant_types: ["password", "client_credentials"],
      },
    ]);
  });

  it("issues a token that never expires for a negative validity period", async () => {
    const { issued } = await newKey(alice, { validityPeriod: -5 });
    expect(issued.key.validityPeriod).toBe(-1);
    expect(issued.token.expiresIn).toBeNull();
    expect(issued.token.token).toMatchObject({ expiresAt: null, active: true });
    expect(await raw("select expires_at from access_tokens where id = $1", [issued.token.token.id])).toEqual([
      { expires_at: null },
    ]);
  });

  it("lets an admin generate keys for another user's application", async () => {
    const app = await newApplication(bob);
    const result = await mustGenerateKeys(t, adminToken, { applicationId: app.id, keyType: "PRODUCTION" });
    expect(result.key.applicationId).toBe(app.id);
    expect(result.token.token).toMatchObject({ applicationId: app.id, kind: "APPLICATION", active: true });
    expect(await keysOf(t, bob.token, app.id)).toEqual([result.key]);
  });

  it("refuses a second generation for the same key type, pointing to regenerateToken", async () => {
    const { app, issued } = await newKey();
    const again = await generateKeys(t, alice.token, { applicationId: app.id, keyType: "PRODUCTION" });
    expect(again).toEqual({
      __typename: "KeysAlreadyGeneratedError",
      code: "KEYS_ALREADY_GENERATED",
      keyType: "PRODUCTION",
      message: "PRODUCTION keys already exist for this application: use regenerateToken for a new token",
    });
    expect(await keysOf(t, alice.token, app.id)).toEqual([issued.key]);
    expect(await activeApplicationTokenIds(t, issued.key.id)).toEqual([issued.token.token.id]);
    // The other key type is still free.
    const sandbox = await mustGenerateKeys(t, alice.token, { applicationId: app.id, keyType: "SANDBOX" });
    expect(sandbox.key.consumerKey).not.toBe(issued.key.consumerKey);
  });

  it("lets only one of two simultaneous generations win", async () => {
    const app = await newApplication();
    const input = { applicationId: app.id, keyType: "PRODUCTION" };
    const results = await Promise.all([
      generateKeys(t, alice.token, input),
      generateKeys(t, alice.token, input),
    ]);
    expect(results.map((r) => r.__typename).sort()).toEqual([
      "GenerateKeysPayload",
      "KeysAlreadyGeneratedError",
    ]);
    expect(await keyCount(app.id)).toBe(1);
  });

  describe("refusals", () => {
    it("answers another subscriber with NotFoundError and stores nothing", async () => {
      const app = await newApplication(bob);
      expect(await generateKeys(t, alice.token, { applicationId: app.id, keyType: "PRODUCTION" })).toEqual(
        notFound("Application", app.id),
      );
      expect(await keyCount(app.id)).toBe(0);
      expect(await eventsOf(t, app.id)).toEqual([]);
    });

    it.each([
      ["no token", undefined, NO_TOKEN],
      ["a bad token", "not-a-token", BAD_TOKEN],
    ])("answers %s with UnauthenticatedError and stores nothing", async (_name, token, expected) => {
      const app = await newApplication();
      expect(await generateKeys(t, token, { applicationId: app.id, keyType: "PRODUCTION" })).toEqual(
        expected,
      );
      expect(await keyCount(app.id)).toBe(0);
    });

    it.each([
      ["a UUID that names no application", UNKNOWN_ID],
      ["a string that is not a UUID", "not-a-uuid"],
    ])("answers %s with NotFoundError", async (_name, applicationId) => {
      expect(await generateKeys(t, adminToken, { applicationId, keyType: "PRODUCTION" })).toEqual(
        notFound("Application", applicationId),
      );
    });
  });

  describe("bad input", () => {
    it.each([
      [
        "a zero validity period",
        { validityPeriod: 0 },
        invalid(
          "validityPeriod",
          "validityPeriod must be a non-zero number of seconds (negative = never expires)",
        ),
      ],
      [
        "a validity period over the maximum",
        { validityPeriod: MAX_SECONDS + 1 },
        invalid("validityPeriod", `validityPeriod must be at most ${MAX_SECONDS} seconds`),
      ],
      [
        "a scope the application is not subscribed to",
        { scopes: ["read", "admin"] },
        invalid("scopes", "scopes: scope admin is not defined by an API the application subscribes to"),
      ],
      [
        "a malformed domain",
        { allowedDomains: ["api.example.com", "not a domain!"] },
        invalid("allowedDomains", 'allowedDomains: "not a domain!" is not a domain name'),
      ],
      [
        "a domain with a scheme",
        { allowedDomains: ["https://api.example.com"] },
        invalid("allowedDomains", 'allowedDomains: "https://api.example.com" is not a domain name'),
      ],
      [
        "ALL combined with a domain",
        { allowedDomains: ["ALL", "api.example.com"] },
        invalid("allowedDomains", "allowedDomains: ALL cannot be combined with other domains"),
      ],
      [
        "an empty list of grant types",
        { grantTypes: [] },
        invalid("grantTypes", "grantTypes: must allow at least one grant type"),
      ],
    ])("rejects %s with a ValidationError and stores nothing", async (_name, override, expected) => {
      const app = await newApplication();
      const result = await generateKeys(t, alice.token, {
        applicationId: app.id,
        keyType: "PRODUCTION",
        ...override,
      });
      expect(result).toEqual(expected);
      expect(await keyCount(app.id)).toBe(0);
      expect(await eventsOf(t, app.id)).toEqual([]);
    });

    it("rejects any scope for an application that subscribes to nothing", async () => {
      const app = await createSubscribedApplication(t, alice.token, undefined);
      expect(
        await generateKeys(t, alice.token, {
          applicationId: app.id,
          keyType: "PRODUCTION",
          scopes: ["read"],
        }),
      ).toEqual(
        invalid("scopes", "scopes: scope read is not defined by an API the application subscribes to"),
      );
      expect(await keyCount(app.id)).toBe(0);
    });
  });
});

describe("regenerateToken", () => {
  it("revokes the previous token at once (reason REGENERATED) and returns a new one", async () => {
    const { issued, ref } = await newKey();
    const old = issued.token.token;
    const result = (await regenerateToken(t, alice.token, ref)) as Issued;
    expect(result).toMatchObject({
      __typename: "RegenerateTokenPayload",
      previousTokensValidUntil: null,
      key: { id: issued.key.id, validityPeriod: null },
      token: {
        accessToken: expect.stringMatching(ACCESS_TOKEN),
        tokenType: "Bearer",
        token: { kind: "APPLICATION", keyType: "PRODUCTION", clientId: issued.consumerKey, active: true },
      },
    });
    expect(result.token.accessToken).not.toBe(issued.token.accessToken);
    expect(lifetimeMs(result.token.token)).toBe(3_600_000);

    expect(await tokenById(t, alice.token, old.id)).toMatchObject({
      active: false,
      revokeReason: "REGENERATED",
      revokedAt: expect.stringMatching(ISO),
      revokeScheduledAt: null,
    });
    expect(await activeApplicationTokenIds(t, issued.key.id)).toEqual([result.token.token.id]);
  });

  it("keeps the previous token active through the grace period, then the sweeper revokes it", async () => {
    const { app, issued, ref } = await newKey();
    const old = issued.token.token;
    const before = Date.now();
    const result = await mustRegenerateToken(t, alice.token, { ...ref, gracePeriod: GRACE });
    const validUntil = Date.parse(result.previousTokensValidUntil!);
    expect(validUntil).toBeGreaterThanOrEqual(before + GRACE * 1000);
    expect(validUntil).toBeLessThanOrEqual(Date.now() + GRACE * 1000);

    // During the grace period both tokens work.
    expect(await tokenById(t, alice.token, old.id)).toMatchObject({
      active: true,
      revokedAt: null,
      revokeReason: null,
      revokeScheduledAt: result.previousTokensValidUntil,
    });
    expect(await activeApplicationTokenIds(t, issued.key.id)).toEqual([old.id, result.token.token.id]);

    // Right after it, the old one is inactive and the sweeper records the revocation.
    await sleep(Math.max(0, validUntil - Date.now()) + 50);
    expect((await tokenById(t, alice.token, old.id))?.active).toBe(false);
    const swept = await waitFor(async () => {
      const row = await tokenRow(old.id);
      return row.revoked ? row : undefined;
    });
    expect(swept).toEqual({
      revoked: true,
      revoked_when_scheduled: true,
      revoke_reason: "REGENERATED",
      scheduled_ms: validUntil,
      active: false,
    });
    expect(await activeApplicationTokenIds(t, issued.key.id)).toEqual([result.token.token.id]);

    // A few more sweeper rounds do not revoke it again.
    await sleep(300);
    const events = await eventsOf(t, app.id);
    expect(events).toEqual([
      {
        type: "KEYS_GENERATED",
        reason: null,
        application_id: app.id,
        key_type: "PRODUCTION",
        token_id: null,
      },
      { type: "ISSUED", reason: null, application_id: app.id, key_type: "PRODUCTION", token_id: old.id },
      {
        type: "ISSUED",
        reason: "REGENERATED",
        application_id: app.id,
        key_type: "PRODUCTION",
        token_id: result.token.token.id,
      },
      {
        type: "REVOKED",
        reason: "REGENERATED",
        application_id: app.id,
        key_type: "PRODUCTION",
        token_id: old.id,
      },
    ]);
    expect(
      await raw("select details from token_events where token_id = $1 and type = 'REVOKED'", [old.id]),
    ).toEqual([{ details: { gracePeriodEnded: true } }]);
  });

  it("changes the key's validity, domains and scopes for the new token", async () => {
    const { issued, ref } = await newKey();
    const result = await mustRegenerateToken(t, alice.token, {
      ...ref,
      validityPeriod: 600,
      allowedDomains: ["ALL"],
      scopes: ["read"],
    });
    expect(result.key).toMatchObject({ validityPeriod: 600, allowedDomains: ["ALL"], scopes: ["read"] });
    expect(result.token.token.scopes).toEqual(["read"]);
    expect(lifetimeMs(result.token.token)).toBe(600_000);
    // Seconds left when the response was built: at most a few seconds below the validity.
    expect(600 - result.token.expiresIn!).toBeGreaterThanOrEqual(0);
    expect(600 - result.token.expiresIn!).toBeLessThanOrEqual(3);
    expect(await keysOf(t, alice.token, ref.applicationId)).toEqual([
      { ...result.key, secrets: issued.key.secrets },
    ]);
  });

  it("issues a token that never expires for a negative validity period", async () => {
    const { ref } = await newKey();
    const result = await mustRegenerateToken(t, alice.token, { ...ref, validityPeriod: -1 });
    expect(result.key.validityPeriod).toBe(-1);
    expect(result.token.expiresIn).toBeNull();
    expect(result.token.token.expiresAt).toBeNull();
  });

  it("lets an admin regenerate the token of another user's application", async () => {
    const { issued, ref } = await newKey(bob);
    const result = await mustRegenerateToken(t, adminToken, ref);
    expect(await activeApplicationTokenIds(t, issued.key.id)).toEqual([result.token.token.id]);
    expect(await tokenById(t, bob.token, issued.token.token.id)).toMatchObject({
      active: false,
      revokeReason: "REGENERATED",
    });
  });

  it("leaves exactly one active token when two regenerations race", async () => {
    const { issued, ref } = await newKey();
    const [first, second] = await Promise.all([
      regenerateToken(t, alice.token, ref),
      regenerateToken(t, alice.token, ref),
    ]);
    expect([first?.__typename, second?.__typename]).toEqual([
      "RegenerateTokenPayload",
      "RegenerateTokenPayload",
    ]);
    const issuedIds = [first, second].map((r) => (r as Issued).token.token.id);
    const active = await activeApplicationTokenIds(t, issued.key.id);
    expect(active).toHaveLength(1);
    expect(issuedIds).toContain(active[0]);
    const rows = await raw<{ id: string; revoke_reason: string | null }>(
      "select id, revoke_reason from access_tokens where application_key_id = $1 and kind = 'APPLICATION' order by issued_at",
      [issued.key.id],
    );
    expect(rows).toHaveLength(3);
    expect(rows.filter((r) => r.id !== active[0]).map((r) => r.revoke_reason)).toEqual([
      "REGENERATED",
      "REGENERATED",
    ]);
  });

  describe("refusals", () => {
    it("answers another subscriber with NotFoundError and leaves the token active", async () => {
      const { app, issued, ref } = await newKey(bob);
      expect(await regenerateToken(t, alice.token, ref)).toEqual(notFound("Application", app.id));
      expect(await activeApplicationTokenIds(t, issued.key.id)).toEqual([issued.token.token.id]);
    });

    it.each([
      ["no token", undefined, NO_TOKEN],
      ["a bad token", "not-a-token", BAD_TOKEN],
    ])("answers %s with UnauthenticatedError and leaves the token active", async (_name, token, expected) => {
      const { issued, ref } = await newKey();
      expect(await regenerateToken(t, token, ref)).toEqual(expected);
      expect(await activeApplicationTokenIds(t, issued.key.id)).toEqual([issued.token.token.id]);
    });

    it("answers an unknown application and a key type without keys with NotFoundError", async () => {
      const { app } = await newKey();
      expect(
        await regenerateToken(t, adminToken, { applicationId: UNKNOWN_ID, keyType: "PRODUCTION" }),
      ).toEqual(notFound("Application", UNKNOWN_ID));
      expect(await regenerateToken(t, alice.token, { applicationId: app.id, keyType: "SANDBOX" })).toEqual(
        notFound("ApplicationKey", "SANDBOX"),
      );
    });
  });

  describe("bad input", () => {
    it.each([
      [
        "a negative grace period",
        { gracePeriod: -1 },
        invalid("gracePeriod", "gracePeriod: must not be negative"),
      ],
      [
        "a grace period over 30 days",
        { gracePeriod: 30 * 86400 + 1 },
        invalid("gracePeriod", "gracePeriod: must be at most 2592000 seconds"),
      ],
      [
        "a zero validity period",
        { validityPeriod: 0 },
        invalid(
          "validityPeriod",
          "validityPeriod must be a non-zero number of seconds (negative = never expires)",
        ),
      ],
      [
        "a validity period over the maximum",
        { validityPeriod: MAX_SECONDS + 1 },
        invalid("validityPeriod", `validityPeriod must be at most ${MAX_SECONDS} seconds`),
      ],
      [
        "a scope the application is not subscribed to",
        { scopes: ["delete"] },
        invalid("scopes", "scopes: scope delete is not defined by an API the application subscribes to"),
      ],
      [
        "a malformed domain",
        { allowedDomains: ["exa mple.com"] },
        invalid("allowedDomains", 'allowedDomains: "exa mple.com" is not a domain name'),
      ],
    ])("rejects %s with a ValidationError and changes nothing", async (_name, override, expected) => {
      const { app, issued, ref } = await newKey();
      expect(await regenerateToken(t, alice.token, { ...ref, ...override })).toEqual(expected);
      expect(await activeApplicationTokenIds(t, issued.key.id)).toEqual([issued.token.token.id]);
      expect(await keysOf(t, alice.token, app.id)).toEqual([issued.key]);
      expect((await eventsOf(t, app.id)).map((e) => e.type)).toEqual(["KEYS_GENERATED", "ISSUED"]);
    });
  });
});

describe("regenerateConsumerSecret", () => {
  it("without a grace period, stops the previous secret at once", async () => {
    const { app, issued, ref } = await newKey();
    const result = await regenerateConsumerSecret(t, alice.token, ref);
    expect(result).toMatchObject({
      __typename: "RegenerateConsumerSecretPayload",
      consumerSecret: expect.stringMatching(CONSUMER_SECRET),
      previousSecretsValidUntil: null,
    });
    expect(result.consumerSecret).not.toBe(issued.consumerSecret);
    const old = issued.key.secrets[0]!;
    expect(result.key!.secrets).toEqual([
      { ...old, revokedAt: expect.stringMatching(ISO), active: false },
      {
        id: idOfValue(result.consumerSecret!),
        createdAt: expect.stringMatching(ISO),
        expiresAt: null,
        lastUsedAt: null,
        revokedAt: null,
        active: true,
      },
    ]);
    expect((await keysOf(t, alice.token, app.id))[0]?.secrets).toEqual(result.key!.secrets);
    // Rotating the secret leaves the key's access token alone.
    expect(await activeApplicationTokenIds(t, issued.key.id)).toEqual([issued.token.token.id]);
  });

  it("with a grace period, keeps the previous secret active until then", async () => {
    const { app, issued, ref } = await newKey();
    const before = Date.now();
    const result = await regenerateConsumerSecret(t, alice.token, { ...ref, gracePeriod: GRACE });
    const validUntil = Date.parse(result.previousSecretsValidUntil!);
    expect(validUntil).toBeGreaterThanOrEqual(before + GRACE * 1000);
    expect(validUntil).toBeLessThanOrEqual(Date.now() + GRACE * 1000);
    const old = issued.key.secrets[0]!;
    expect(result.key!.secrets).toEqual([
      { ...old, expiresAt: result.previousSecretsValidUntil, active: true },
      expect.objectContaining({ id: idOfValue(result.consumerSecret!), expiresAt: null, active: true }),
    ]);

    await sleep(Math.max(0, validUntil - Date.now()) + 50);
    expect((await keysOf(t, alice.token, app.id))[0]?.secrets).toEqual([
      { ...old, expiresAt: result.previousSecretsValidUntil, active: false },
      expect.objectContaining({ id: idOfValue(result.consumerSecret!), active: true }),
    ]);
  });

  it("keeps an earlier grace period when a later rotation grants a longer one", async () => {
    const { app, ref } = await newKey();
    const first = await regenerateConsumerSecret(t, alice.token, { ...ref, gracePeriod: 60 });
    const second = await regenerateConsumerSecret(t, alice.token, { ...ref, gracePeriod: 3600 });
    const secrets = (await keysOf(t, alice.token, app.id))[0]!.secrets;
    expect(secrets.map((s) => [s.expiresAt, s.active])).toEqual([
      [first.previousSecretsValidUntil, true],
      [second.previousSecretsValidUntil, true],
      [null, true],
    ]);
  });

  it("lets an admin rotate the secret of another user's application", async () => {
    const { app, ref } = await newKey(bob);
    const result = await regenerateConsumerSecret(t, adminToken, ref);
    expect(result.__typename).toBe("RegenerateConsumerSecretPayload");
    expect((await keysOf(t, bob.token, app.id))[0]?.secrets.map((s) => s.active)).toEqual([false, true]);
  });

  describe("refusals and bad input", () => {
    it("answers another subscriber with NotFoundError and keeps the secret", async () => {
      const { app, issued, ref } = await newKey(bob);
      expect(await regenerateConsumerSecret(t, alice.token, ref)).toEqual(notFound("Application", app.id));
      expect((await keysOf(t, bob.token, app.id))[0]?.secrets).toEqual(issued.key.secrets);
    });

    it("answers no token with UnauthenticatedError and keeps the secret", async () => {
      const { app, issued, ref } = await newKey();
      expect(await regenerateConsumerSecret(t, undefined, ref)).toEqual(NO_TOKEN);
      expect((await keysOf(t, alice.token, app.id))[0]?.secrets).toEqual(issued.key.secrets);
    });

    it("answers a key type without keys with NotFoundError", async () => {
      const { app } = await newKey();
      expect(
        await regenerateConsumerSecret(t, alice.token, { applicationId: app.id, keyType: "SANDBOX" }),
      ).toEqual(notFound("ApplicationKey", "SANDBOX"));
    });

    it.each([
      [-1, "gracePeriod: must not be negative"],
      [30 * 86400 + 1, "gracePeriod: must be at most 2592000 seconds"],
    ])(
      "rejects grace period %i with a ValidationError and keeps the secret",
      async (gracePeriod, message) => {
        const { app, issued, ref } = await newKey();
        expect(await regenerateConsumerSecret(t, alice.token, { ...ref, gracePeriod })).toEqual(
          invalid("gracePeriod", message),
        );
        expect((await keysOf(t, alice.token, app.id))[0]?.secrets).toEqual(issued.key.secrets);
      },
    );
  });
});

describe("consumer secret rollover at POST /token (client_credentials)", () => {
  const TOKEN_RESPONSE = {
    access_token: expect.stringMatching(ACCESS_TOKEN),
    token_type: "Bearer",
    expires_in: 3600,
  };
  const INVALID_CLIENT = {
    status: 401,
    body: { error: "invalid_client", error_description: "client authentication failed" },
  };
  const outcome = async (consumerKey: string, secret: string) => {
    const { status, body, headers } = await clientCredentials(t, consumerKey, secret);
    expect(headers.get("cache-control")).toBe("no-store");
    if (status === 401)
      expect(headers.get("www-authenticate")).toBe('Basic realm="token-manager", charset="UTF-8"');
    return { status, body };
  };

  it("accepts both secrets during the grace period, and refuses the old one after it", async () => {
    const { app, issued, ref } = await newKey();
    const consumerKey = issued.consumerKey!;
    const result = await regenerateConsumerSecret(t, alice.token, { ...ref, gracePeriod: GRACE });
    const validUntil = Date.parse(result.previousSecretsValidUntil!);

    expect(await outcome(consumerKey, issued.consumerSecret!)).toEqual({ status: 200, body: TOKEN_RESPONSE });
    expect(await outcome(consumerKey, result.consumerSecret!)).toEqual({ status: 200, body: TOKEN_RESPONSE });
    // Both uses are recorded on their secrets.
    const secrets = (await keysOf(t, alice.token, app.id))[0]!.secrets;
    expect(secrets.map((s) => [s.active, s.lastUsedAt !== null])).toEqual([
      [true, true],
      [true, true],
    ]);

    await sleep(Math.max(0, validUntil - Date.now()) + 50);
    expect(await outcome(consumerKey, issued.consumerSecret!)).toEqual(INVALID_CLIENT);
    expect(await outcome(consumerKey, result.consumerSecret!)).toEqual({ status: 200, body: TOKEN_RESPONSE });
  });

  it("refuses the old secret at once without a grace period", async () => {
    const { issued, ref } = await newKey();
    const consumerKey = issued.consumerKey!;
    expect(await outcome(consumerKey, issued.consumerSecret!)).toEqual({ status: 200, body: TOKEN_RESPONSE });
    const result = await regenerateConsumerSecret(t, alice.token, ref);
    expect(await outcome(consumerKey, issued.consumerSecret!)).toEqual(INVALID_CLIENT);
    expect(await outcome(consumerKey, result.consumerSecret!)).toEqual({ status: 200, body: TOKEN_RESPONSE });
  });

  it("refuses the old secret at once when it was revoked while its first use was recording the use", async () => {
    const { issued, ref } = await newKey();
    const consumerKey = issued.consumerKey!;
    const { rotation, first } = await rotateDuringFirstUse(ref, () =>
      outcome(consumerKey, issued.consumerSecret!),
    );
    const rotated = await rotation;
    expect(rotated.__typename).toBe("RegenerateConsumerSecretPayload");
    // The use read the secret before the revocation committed: it is served.
    expect(await first).toEqual({ status: 200, body: TOKEN_RESPONSE });
    // The race took place: the use's write of last_used_at is the old secret's latest version,
    // made after the rotation's transaction (which created the new secret).
    const [order] = await raw<{ after: boolean }>(
      `select old.xmin::text::bigint > new.xmin::text::bigint as after
       from consumer_secrets old, consumer_secrets new where old.id = $1 and new.id = $2`,
      [idOfValue(issued.consumerSecret!), idOfValue(rotated.consumerSecret!)],
    );
    expect(order).toEqual({ after: true });
    // That late write must not put the unrevoked secret back into the client cache (it did, and
    // the revoked secret was accepted for the cache's 10 s lifetime).
    expect(await outcome(consumerKey, issued.consumerSecret!)).toEqual(INVALID_CLIENT);
    expect(await outcome(consumerKey, rotated.consumerSecret!)).toEqual({
      status: 200,
      body: TOKEN_RESPONSE,
    });
  });
});

/**
 * Rotates the key's secret (no grace period) while `use` presents the old one for the first
 * time, so that the use reads the secret before the revocation commits and records its use
 * (last_used_at) only after the rotation committed and announced its event.
 */
async function rotateDuringFirstUse<T>(ref: Record<string, unknown>, use: () => Promise<T>) {
  let rotation!: Promise<Outcome>;
  let first!: Promise<T>;
  if (t.app.deps.database.driver === "postgres") {
    const outside = postgres(t.databaseUrl!, { max: 1, onnotice: () => {} });
    try {
      await outside.begin(async (tx) => {
        const someoneWaitsOn = (event: string) =>
          waitFor(async () => {
            const [row] = await tx<{ n: number }[]>`select count(*)::int as n from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock' and wait_event = ${event}`;
            return row!.n > 0 ? true : undefined;
          });
        // Every statement appending token events takes this lock: the rotation, having revoked
        // the secret (its row locked), waits for it before its event and its commit.
        await tx`select pg_advisory_xact_lock(${EVENT_ORDER_LOCK})`;
        rotation = regenerateConsumerSecret(t, alice.token, ref);
        await someoneWaitsOn("advisory");
        // The use reads the committed row (not revoked yet); its update waits for the row lock.
        first = use();
        await someoneWaitsOn("transactionid");
      });
    } finally {
      await outside.end();
    }
  } else {
    // PGlite has one connection: while this transaction holds it, the app's statements queue in
    // order: the rotation's viewer read, the use's read, then the rotation's transaction (begun
    // once its viewer is known), ahead of the use's update.
    await t.app.deps.db.transaction(async () => {
      t.resetStatements();
      const sent = (from: string) =>
        waitFor(async () => (t.statements.some((s) => s.includes(from)) ? true : undefined));
      rotation = regenerateConsumerSecret(t, alice.token, ref);
      await sent('from "access_tokens" inner join "users"');
      first = use();
      await sent('from "consumer_secrets" inner join "application_keys"');
    });
  }
  return { rotation, first };
}

describe("setValidityPeriod", () => {
  it("sets the validity for later tokens only, by default", async () => {
    const { app, issued, ref } = await newKey();
    const result = await setValidityPeriod(t, alice.token, { ...ref, validityPeriod: 7200 });
    expect(result).toMatchObject({
      __typename: "SetValidityPeriodPayload",
      updatedTokens: 0,
      key: { id: issued.key.id, validityPeriod: 7200 },
    });
    expect((await tokenById(t, alice.token, issued.token.token.id))?.expiresAt).toBe(
      issued.token.token.expiresAt,
    );
    const next = await mustRegenerateToken(t, alice.token, ref);
    expect(lifetimeMs(next.token.token)).toBe(7_200_000);
    expect(
      await raw("select details from token_events where application_id = $1 and type = 'VALIDITY_CHANGED'", [
        app.id,
      ]),
    ).toEqual([{ details: { validityPeriod: 7200, applyToActiveTokens: false } }]);
  });

  it("with applyToActiveTokens, moves the expiry of the active tokens and writes VALIDITY_CHANGED events", async () => {
    const { app, issued, ref } = await newKey();
    // One revoked token (the first) and two active ones (the second during its grace period).
    const second = await mustRegenerateToken(t, alice.token, ref);
    const third = await mustRegenerateToken(t, alice.token, { ...ref, gracePeriod: 600 });
    const before = await eventsOf(t, app.id);

    const result = await setValidityPeriod(t, alice.token, {
      ...ref,
      validityPeriod: 60,
      applyToActiveTokens: true,
    });
    expect(result).toMatchObject({ updatedTokens: 2, key: { validityPeriod: 60 } });
    for (const id of [second.token.token.id, third.token.token.id]) {
      const token = await tokenById(t, alice.token, id);
      expect(lifetimeMs(token!)).toBe(60_000);
    }
    // The revoked token keeps its expiry.
    expect((await tokenById(t, alice.token, issued.token.token.id))?.expiresAt).toBe(
      issued.token.token.expiresAt,
    );
    const events = (await eventsOf(t, app.id)).slice(before.length);
    const changed = {
      type: "VALIDITY_CHANGED",
      reason: null,
      application_id: app.id,
      key_type: "PRODUCTION",
    };
    expect(events).toEqual([
      { ...changed, token_id: null },
      { ...changed, token_id: expect.any(String) },
      { ...changed, token_id: expect.any(String) },
    ]);
    expect(
      events
        .slice(1)
        .map((e) => e.token_id)
        .sort(),
    ).toEqual([second.token.token.id, third.token.token.id].sort());
  });

  it("with a negative validity and applyToActiveTokens, makes the active tokens never expire", async () => {
    const { issued, ref } = await newKey();
    const result = await setValidityPeriod(t, alice.token, {
      ...ref,
      validityPeriod: -1,
      applyToActiveTokens: true,
    });
    expect(result).toMatchObject({ updatedTokens: 1, key: { validityPeriod: -1 } });
    expect(await tokenById(t, alice.token, issued.token.token.id)).toMatchObject({
      expiresAt: null,
      active: true,
    });
  });

  it("lets an admin set the validity of another user's key", async () => {
    const { app, ref } = await newKey(bob);
    const result = await setValidityPeriod(t, adminToken, { ...ref, validityPeriod: 300 });
    expect(result).toMatchObject({ __typename: "SetValidityPeriodPayload", key: { validityPeriod: 300 } });
    expect((await keysOf(t, bob.token, app.id))[0]?.validityPeriod).toBe(300);
  });

  describe("refusals and bad input", () => {
    it("answers another subscriber with NotFoundError and keeps the validity", async () => {
      const { app, ref } = await newKey(bob, { validityPeriod: 900 });
      expect(await setValidityPeriod(t, alice.token, { ...ref, validityPeriod: 60 })).toEqual(
        notFound("Application", app.id),
      );
      expect((await keysOf(t, bob.token, app.id))[0]?.validityPeriod).toBe(900);
    });

    it("answers no token with UnauthenticatedError", async () => {
      const { ref } = await newKey();
      expect(await setValidityPeriod(t, undefined, { ...ref, validityPeriod: 60 })).toEqual(NO_TOKEN);
    });

    it("answers a key type without keys with NotFoundError", async () => {
      const { app } = await newKey();
      expect(
        await setValidityPeriod(t, alice.token, {
          applicationId: app.id,
          keyType: "SANDBOX",
          validityPeriod: 60,
        }),
      ).toEqual(notFound("ApplicationKey", "SANDBOX"));
    });

    it.each([
      [0, "validityPeriod must be a non-zero number of seconds (negative = never expires)"],
      [MAX_SECONDS + 1, `validityPeriod must be at most ${MAX_SECONDS} seconds`],
    ])("rejects validity %i with a ValidationError and changes nothing", async (validityPeriod, message) => {
      const { app, issued, ref } = await newKey(alice, { validityPeriod: 900 });
      expect(
        await setValidityPeriod(t, alice.token, { ...ref, validityPeriod, applyToActiveTokens: true }),
      ).toEqual(invalid("validityPeriod", message));
      expect((await keysOf(t, alice.token, app.id))[0]?.validityPeriod).toBe(900);
      expect((await tokenById(t, alice.token, issued.token.token.id))?.expiresAt).toBe(
        issued.token.token.expiresAt,
      );
      expect((await eventsOf(t, app.id)).map((e) => e.type)).toEqual(["KEYS_GENERATED", "ISSUED"]);
    });
  });
});

describe("token events", () => {
  const event = (applicationId: string, type: string, reason: string | null, tokenId: string | null) => ({
    type,
    reason,
    application_id: applicationId,
    key_type: "PRODUCTION",
    token_id: tokenId,
  });

  it("generateKeys writes KEYS_GENERATED then ISSUED, with the caller as actor", async () => {
    const { app, issued } = await newKey();
    expect(await eventsOf(t, app.id)).toEqual([
      event(app.id, "KEYS_GENERATED", null, null),
      event(app.id, "ISSUED", null, issued.token.token.id),
    ]);
    expect(
      await raw("select distinct actor_id from token_events where application_id = $1", [app.id]),
    ).toEqual([{ actor_id: alice.id }]);
  });

  it("regenerateToken writes REVOKED (reason REGENERATED) for the old token, then ISSUED for the new one", async () => {
    const { app, issued, ref } = await newKey();
    const next = await mustRegenerateToken(t, alice.token, ref);
    expect((await eventsOf(t, app.id)).slice(2)).toEqual([
      event(app.id, "REVOKED", "REGENERATED", issued.token.token.id),
      event(app.id, "ISSUED", "REGENERATED", next.token.token.id),
    ]);
  });

  it("regenerateConsumerSecret writes SECRET_ROTATED for the key", async () => {
    const { app, ref } = await newKey();
    await regenerateConsumerSecret(t, alice.token, { ...ref, gracePeriod: 30 });
    expect((await eventsOf(t, app.id)).slice(2)).toEqual([event(app.id, "SECRET_ROTATED", null, null)]);
    expect(
      await raw("select details from token_events where application_id = $1 and type = 'SECRET_ROTATED'", [
        app.id,
      ]),
    ).toEqual([{ details: { gracePeriod: 30 } }]);
  });

  it("refused mutations write no event", async () => {
    const { app, ref } = await newKey(bob);
    const attempts: Outcome[] = [
      await generateKeys(t, alice.token, ref),
      await regenerateToken(t, alice.token, ref),
      await regenerateConsumerSecret(t, alice.token, ref),
      await setValidityPeriod(t, alice.token, { ...ref, validityPeriod: 60 }),
    ];
    expect(attempts.map((a) => a.__typename)).toEqual([
      "NotFoundError",
      "NotFoundError",
      "NotFoundError",
      "NotFoundError",
    ]);
    expect((await eventsOf(t, app.id)).map((e) => e.type)).toEqual(["KEYS_GENERATED", "ISSUED"]);
  });
});
