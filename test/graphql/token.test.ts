import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { mintTokenValue, TOKEN_PREFIXES } from "../../src/domain/token-value.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { UNKNOWN_ID, uniqueName } from "../support/fixtures.js";
import { createSubscriber, LOGIN, loginAdmin } from "../support/graphql.js";
import {
  ACTIVE_SQL,
  BAD_TOKEN,
  createScopedApi,
  createSubscribedApplication,
  FORBIDDEN,
  generateKeys,
  invalid,
  listTokens,
  ME,
  mustGenerateKeys,
  mustRegenerateToken,
  NO_TOKEN,
  notFound,
  type Outcome,
  regenerateToken,
  revokeToken,
  revokeTokenById,
  revokeTokens,
  run,
  setValidityPeriod,
  TOKEN_SETTINGS,
  type TokenView,
  updateTokenSettings,
} from "../support/keys.js";

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface Subscriber {
  id: string;
  token: string;
  password: string;
  username: string;
}

let t: TestApp;
let adminToken: string;
let alice: Subscriber;
let bob: Subscriber;
let apiId: string;

async function newSubscriber(app: TestApp, admin: string, prefix: string): Promise<Subscriber> {
  const username = uniqueName(prefix);
  return { ...(await createSubscriber(app, admin, username)), username };
}

beforeAll(async () => {
  t = await startTestApp();
  adminToken = await loginAdmin(t);
  alice = await newSubscriber(t, adminToken, "alice");
  bob = await newSubscriber(t, adminToken, "bob");
  ({ id: apiId } = await createScopedApi(t, adminToken, ["read", "write"]));
});
afterAll(() => t.stop());

const raw = <T = Record<string, unknown>>(sql: string, params?: unknown[]) =>
  t.app.deps.database.raw<T>(sql, params);

/** An application of the owner's with keys of one type (default PRODUCTION). */
async function newKey(owner: Subscriber, input: Record<string, unknown> = {}) {
  const app = await createSubscribedApplication(t, owner.token, apiId);
  const issued = await mustGenerateKeys(t, owner.token, {
    applicationId: app.id,
    keyType: "PRODUCTION",
    ...input,
  });
  return { app, issued, token: issued.token.token, value: issued.token.accessToken };
}

/** A cursor made as the service makes them (base64url of `<issuedAt>|<id>`), from any parts. */
const cursorOf = (issuedAt: string, id: string) => Buffer.from(`${issuedAt}|${id}`).toString("base64url");
const BAD_CURSOR = invalid("after", "after is not a cursor from this list");

const nodeIds = (outcome: Outcome) => outcome.nodes?.map((n) => n.id);
const isActiveInDb = async (id: string) =>
  (
    await raw<{ active: boolean }>(`select (${ACTIVE_SQL}) as active from access_tokens where id = $1`, [id])
  )[0]?.active;
const revokedEvents = (tokenId: string) =>
  raw<{ reason: string; actor_id: string }>(
    "select reason, actor_id from token_events where token_id = $1 and type = 'REVOKED' order by id",
    [tokenId],
  );

/** Every token the caller may see, page by page (to compare with the database). */
async function allTokens(token: string, filter?: Record<string, unknown>): Promise<TokenView[]> {
  const nodes: TokenView[] = [];
  let after: string | null | undefined;
  for (;;) {
    const page = await listTokens(t, token, { filter, first: 200, after });
    nodes.push(...page.nodes!);
    if (!page.hasNextPage) return nodes;
    after = page.endCursor;
  }
}

describe("tokens", () => {
  let carol: Subscriber;
  let carolApp: { id: string };
  let production: TokenView;
  let sandbox: TokenView;
  let regenerated: TokenView;
  let loginToken: TokenView;

  beforeAll(async () => {
    carol = await newSubscriber(t, adminToken, "carol");
    const first = await newKey(carol, { scopes: ["read"] });
    carolApp = first.app;
    production = first.token;
    sandbox = (await mustGenerateKeys(t, carol.token, { applicationId: carolApp.id, keyType: "SANDBOX" }))
      .token.token;
    regenerated = (
      await mustRegenerateToken(t, carol.token, { applicationId: carolApp.id, keyType: "PRODUCTION" })
    ).token.token;
    // Someone else's tokens, which Carol must not see.
    await newKey(bob);
    const [row] = await raw<{ id: string }>("select id from access_tokens where user_id = $1", [carol.id]);
    loginToken = { id: row!.id } as TokenView;
  });

  it("shows a subscriber its own tokens and its applications', newest first, metadata only", async () => {
    const result = await listTokens(t, carol.token);
    expect(result).toMatchObject({ __typename: "TokenConnection", hasNextPage: false });
    expect(nodeIds(result)).toEqual([regenerated.id, sandbox.id, production.id, loginToken.id]);
    expect(result.nodes![3]).toEqual({
      id: loginToken.id,
      kind: "USER",
      format: "OPAQUE",
      keyType: null,
      applicationId: null,
      userId: carol.id,
      clientId: "console",
      userStoreDomain: "PRIMARY",
      scopes: [],
      issuedAt: expect.stringMatching(ISO),
      expiresAt: expect.stringMatching(ISO),
      revokedAt: null,
      revokeReason: null,
      revokeScheduledAt: null,
      active: true,
      value: null,
    });
    expect(result.nodes![2]).toEqual({
      ...production,
      active: false,
      revokedAt: expect.stringMatching(ISO),
      revokeReason: "REGENERATED",
    });
    // Hash mode: no value is ever readable again.
    expect(result.nodes!.map((n) => n.value)).toEqual([null, null, null, null]);
    expect(result.edges?.map((e) => e.cursor)).toHaveLength(4);
    expect(result.endCursor).toBe(result.edges![3]!.cursor);
  });

  it("shows an admin every token, in the database's newest-first order", async () => {
    const rows = await raw<{ id: string }>("select id from access_tokens order by issued_at desc, id desc");
    const nodes = await allTokens(adminToken);
    expect(nodes.map((n) => n.id)).toEqual(rows.map((r) => r.id));
    expect(nodes.map((n) => n.userId)).toContain(bob.id);
    expect(nodes.every((n) => n.value === null)).toBe(true);
  });

  it.each([
    [
      "applicationId",
      () => ({ applicationId: carolApp.id }),
      () => [regenerated.id, sandbox.id, production.id],
    ],
    ["keyType", () => ({ keyType: "SANDBOX" }), () => [sandbox.id]],
    ["kind USER", () => ({ kind: "USER" }), () => [loginToken.id]],
    ["kind APPLICATION", () => ({ kind: "APPLICATION" }), () => [regenerated.id, sandbox.id, production.id]],
    ["active true", () => ({ active: true }), () => [regenerated.id, sandbox.id, loginToken.id]],
    ["active false", () => ({ active: false }), () => [production.id]],
    ["scope", () => ({ scope: "read" }), () => [regenerated.id, production.id]],
    [
      "applicationId, keyType and active together",
      () => ({ applicationId: carolApp.id, keyType: "PRODUCTION", active: true }),
      () => [regenerated.id],
    ],
  ])("filters by %s", async (_name, filter, expected) => {
    expect(nodeIds(await listTokens(t, carol.token, { filter: filter() }))).toEqual(expected());
  });

  it("shows a subscriber nothing for another user's application or user id", async () => {
    const bobsApp = await raw<{ id: string }>("select id from applications where owner_id = $1 limit 1", [
      bob.id,
    ]);
    for (const filter of [{ applicationId: bobsApp[0]!.id }, { userId: bob.id }]) {
      expect(await listTokens(t, carol.token, { filter })).toMatchObject({ nodes: [], hasNextPage: false });
    }
    // An admin does see them.
    expect((await listTokens(t, adminToken, { filter: { userId: bob.id } })).nodes?.length).toBeGreaterThan(
      0,
    );
  });

  it("paginates with first and after, without gaps or repeats", async () => {
    const ids: string[] = [];
    const pages: boolean[] = [];
    let after: string | null | undefined;
    do {
      const page = await listTokens(t, carol.token, { first: 3, after });
      ids.push(...nodeIds(page)!);
      pages.push(page.hasNextPage!);
      after = page.endCursor;
      if (!page.hasNextPage) break;
    } while (after);
    expect(pages).toEqual([true, false]);
    expect(ids).toEqual([regenerated.id, sandbox.id, production.id, loginToken.id]);

    const second = await listTokens(t, carol.token, {
      first: 1,
      after: (await listTokens(t, carol.token, { first: 1 })).endCursor,
    });
    expect(nodeIds(second)).toEqual([sandbox.id]);
    const last = await listTokens(t, carol.token, { first: 4 });
    expect(await listTokens(t, carol.token, { after: last.endCursor })).toMatchObject({
      nodes: [],
      hasNextPage: false,
      endCursor: null,
    });
  });

  it.each([
    [{ first: 0 }, invalid("first", "first must be 1 to 200")],
    [{ first: 201 }, invalid("first", "first must be 1 to 200")],
    [{ after: "garbage" }, invalid("after", "after is not a cursor from this list")],
    [{ after: cursorOf("2024-01-01T00:00:00.000Z", "-".repeat(36)) }, BAD_CURSOR],
    [{ after: cursorOf("+275760-09-13T00:00:00.000Z", UNKNOWN_ID) }, BAD_CURSOR],
    [{ after: cursorOf("2024-02-30T00:00:00.000Z", UNKNOWN_ID) }, BAD_CURSOR],
    [{ after: `${cursorOf("2024-01-01T00:00:00.000Z", UNKNOWN_ID)}fHg` }, BAD_CURSOR],
    [{ filter: { applicationId: "" } }, invalid("applicationId", "applicationId: must not be empty")],
    [{ filter: { scope: "" } }, invalid("scope", "scope: must not be empty")],
    [{ filter: { applicationId: "not-a-uuid" } }, notFound("Application", "not-a-uuid")],
  ])("answers %j with a typed error", async (variables, expected) => {
    expect(await listTokens(t, carol.token, variables)).toEqual(expected);
  });

  it.each([
    ["no token", undefined, NO_TOKEN],
    ["a bad token", "not-a-token", BAD_TOKEN],
  ])("answers %s with UnauthenticatedError", async (_name, token, expected) => {
    expect(await listTokens(t, token)).toEqual(expected);
  });
});

describe("revokeToken", () => {
  it("revokes the owner's application token by value (reason OWNER), once", async () => {
    const { token, value } = await newKey(alice);
    const result = await revokeToken(t, alice.token, value);
    expect(result).toEqual({
      __typename: "RevokeTokenPayload",
      token: { ...token, active: false, revokedAt: expect.stringMatching(ISO), revokeReason: "OWNER" },
    });
    expect(await isActiveInDb(token.id)).toBe(false);
    expect(await revokedEvents(token.id)).toEqual([{ reason: "OWNER", actor_id: alice.id }]);

    // Revoking twice is harmless: same answer, no second event.
    expect(await revokeToken(t, alice.token, value)).toEqual(result);
    expect(await revokedEvents(token.id)).toEqual([{ reason: "OWNER", actor_id: alice.id }]);
  });

  it("lets an admin revoke any token by value (reason ADMIN)", async () => {
    const { token, value } = await newKey(bob);
    expect(await revokeToken(t, adminToken, value)).toMatchObject({
      token: { id: token.id, active: false, revokeReason: "ADMIN" },
    });
    expect(await isActiveInDb(token.id)).toBe(false);
  });

  it("revokes the caller's own console token, which then stops working", async () => {
    const dave = await newSubscriber(t, adminToken, "dave");
    expect(await revokeToken(t, dave.token, dave.token)).toMatchObject({
      token: { kind: "USER", userId: dave.id, active: false, revokeReason: "OWNER" },
    });
    expect(await run(t, dave.token, ME)).toEqual(BAD_TOKEN);
  });

  it("answers another subscriber with NotFoundError and leaves the token active", async () => {
    const { token, value } = await newKey(bob);
    expect(await revokeToken(t, alice.token, value)).toEqual(notFound("Token", "(value)"));
    expect(await isActiveInDb(token.id)).toBe(true);
    expect(await revokedEvents(token.id)).toEqual([]);
  });

  it.each([
    ["garbage", () => "garbage"],
    ["a well-formed value that names no token", () => mintTokenValue(TOKEN_PREFIXES.accessToken).value],
    ["a consumer secret", () => mintTokenValue(TOKEN_PREFIXES.consumerSecret).value],
    ["something shaped like a JWT", () => "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl"],
  ])("answers %s with NotFoundError", async (_name, value) => {
    expect(await revokeToken(t, adminToken, value())).toEqual(notFound("Token", "(value)"));
  });

  it("answers a forged value for a real token id with NotFoundError, leaving the token active", async () => {
    const { token } = await newKey(alice);
    const forged = mintTokenValue(TOKEN_PREFIXES.accessToken, token.id).value;
    expect(await revokeToken(t, alice.token, forged)).toEqual(notFound("Token", "(value)"));
    expect(await isActiveInDb(token.id)).toBe(true);
  });

  it("answers an empty value with a ValidationError", async () => {
    expect(await revokeToken(t, alice.token, "")).toEqual(invalid("token", "token must be a token value"));
  });

  it.each([
    ["no token", undefined, NO_TOKEN],
    ["a bad token", "not-a-token", BAD_TOKEN],
  ])("answers %s with UnauthenticatedError and revokes nothing", async (_name, caller, expected) => {
    const { token, value } = await newKey(alice);
    expect(await revokeToken(t, caller, value)).toEqual(expected);
    expect(await isActiveInDb(token.id)).toBe(true);
  });
});

describe("revokeTokenById", () => {
  it("revokes the owner's token by id (reason OWNER); twice is harmless", async () => {
    const { token } = await newKey(alice);
    const result = await revokeTokenById(t, alice.token, token.id);
    expect(result).toEqual({
      __typename: "RevokeTokenByIdPayload",
      token: { ...token, active: false, revokedAt: expect.stringMatching(ISO), revokeReason: "OWNER" },
    });
    expect(await revokeTokenById(t, alice.token, token.id)).toEqual(result);
    expect(await revokedEvents(token.id)).toEqual([{ reason: "OWNER", actor_id: alice.id }]);
  });

  it("lets an admin revoke any token by id (reason ADMIN)", async () => {
    const { token } = await newKey(bob);
    expect(await revokeTokenById(t, adminToken, token.id)).toMatchObject({
      token: { id: token.id, active: false, revokeReason: "ADMIN" },
    });
  });

  it("answers another subscriber with NotFoundError and leaves the token active", async () => {
    const { token } = await newKey(bob);
    expect(await revokeTokenById(t, alice.token, token.id)).toEqual(notFound("Token", token.id));
    expect(await isActiveInDb(token.id)).toBe(true);
  });

  it.each([UNKNOWN_ID, "not-a-uuid"])("answers %s with NotFoundError", async (id) => {
    expect(await revokeTokenById(t, adminToken, id)).toEqual(notFound("Token", id));
  });

  it("answers no token with UnauthenticatedError", async () => {
    const { token } = await newKey(alice);
    expect(await revokeTokenById(t, undefined, token.id)).toEqual(NO_TOKEN);
    expect(await isActiveInDb(token.id)).toBe(true);
  });
});

describe("revokeTokens", () => {
  it("revokes every active token of an application (reason ADMIN) and returns how many", async () => {
    const { app, token } = await newKey(alice);
    const sandbox = await mustGenerateKeys(t, alice.token, { applicationId: app.id, keyType: "SANDBOX" });
    const other = await newKey(alice);
    expect(await revokeTokens(t, adminToken, { applicationId: app.id })).toEqual({
      __typename: "RevokeTokensPayload",
      count: 2,
    });
    expect(await isActiveInDb(token.id)).toBe(false);
    expect(await isActiveInDb(sandbox.token.token.id)).toBe(false);
    expect(await isActiveInDb(other.token.id)).toBe(true);
    expect(await revokedEvents(token.id)).toEqual([{ reason: "ADMIN", actor_id: expect.any(String) }]);
    // Nothing left to revoke.
    expect(await revokeTokens(t, adminToken, { applicationId: app.id })).toMatchObject({ count: 0 });
  });

  it("narrows by key type", async () => {
    const { app, token } = await newKey(alice);
    const sandbox = await mustGenerateKeys(t, alice.token, { applicationId: app.id, keyType: "SANDBOX" });
    expect(await revokeTokens(t, adminToken, { applicationId: app.id, keyType: "SANDBOX" })).toMatchObject({
      count: 1,
    });
    expect(await isActiveInDb(sandbox.token.token.id)).toBe(false);
    expect(await isActiveInDb(token.id)).toBe(true);
  });

  it("revokes a user's tokens, ending its console sessions", async () => {
    const erin = await newSubscriber(t, adminToken, "erin");
    const { token } = await newKey(erin);
    expect(await revokeTokens(t, adminToken, { userId: erin.id })).toMatchObject({ count: 1 });
    expect(await run(t, erin.token, ME)).toEqual(BAD_TOKEN);
    // Its application's token is not the user's own: it stays.
    expect(await isActiveInDb(token.id)).toBe(true);
  });

  it("revokes every token holding a scope", async () => {
    const scope = uniqueName("audit");
    const api = await createScopedApi(t, adminToken, [scope]);
    const app = await createSubscribedApplication(t, alice.token, api.id);
    const withScope = await mustGenerateKeys(t, alice.token, {
      applicationId: app.id,
      keyType: "PRODUCTION",
      scopes: [scope],
    });
    const without = await mustGenerateKeys(t, alice.token, { applicationId: app.id, keyType: "SANDBOX" });
    expect(await revokeTokens(t, adminToken, { scope })).toMatchObject({ count: 1 });
    expect(await isActiveInDb(withScope.token.token.id)).toBe(false);
    expect(await isActiveInDb(without.token.token.id)).toBe(true);
  });

  it("revokes nothing for an application that does not exist", async () => {
    expect(await revokeTokens(t, adminToken, { applicationId: UNKNOWN_ID })).toMatchObject({ count: 0 });
  });

  it.each([
    ["an application", "applicationId"],
    ["a user", "userId"],
    ["a scope", "scope"],
  ])("refuses an empty %s id or name with a ValidationError, revoking nothing", async (_name, field) => {
    const { token } = await newKey(alice);
    const before = await raw<{ n: number }>(
      `select count(*)::int as n from access_tokens where ${ACTIVE_SQL}`,
    );
    expect(await revokeTokens(t, adminToken, { [field]: "" })).toEqual(
      invalid(field, `${field}: must not be empty`),
    );
    expect(await raw(`select count(*)::int as n from access_tokens where ${ACTIVE_SQL}`)).toEqual(before);
    expect(await isActiveInDb(token.id)).toBe(true);
  });

  it.each([
    ["an empty filter", {}],
    ["a filter with only active", { active: true }],
  ])("requires at least one criterion: %s is a ValidationError", async (_name, filter) => {
    const before = await raw<{ n: number }>(
      `select count(*)::int as n from access_tokens where ${ACTIVE_SQL}`,
    );
    expect(await revokeTokens(t, adminToken, filter)).toEqual(
      invalid("filter", "filter must name an application, user, key type, kind or scope"),
    );
    expect(await raw(`select count(*)::int as n from access_tokens where ${ACTIVE_SQL}`)).toEqual(before);
  });

  it.each([
    ["a subscriber, even for its own application", () => alice.token, FORBIDDEN],
    ["no token", () => undefined, NO_TOKEN],
  ])("answers %s with a typed error and revokes nothing", async (_name, caller, expected) => {
    const { app, token } = await newKey(alice);
    expect(await revokeTokens(t, caller(), { applicationId: app.id })).toEqual(expected);
    expect(await isActiveInDb(token.id)).toBe(true);
  });
});

describe("token settings", () => {
  const DEFAULTS = {
    applicationValidity: 3600,
    userValidity: 3600,
    refreshValidity: 86400,
    maxValidity: null,
    allowNeverExpiring: true,
  };
  let s: TestApp;
  let admin: string;
  let owner: Subscriber;
  let settingsApiId: string;

  beforeAll(async () => {
    s = await startTestApp();
    admin = await loginAdmin(s);
    owner = await newSubscriber(s, admin, "owner");
    ({ id: settingsApiId } = await createScopedApi(s, admin, ["read"]));
  });
  afterEach(async () => {
    expect(await updateTokenSettings(s, admin, DEFAULTS)).toMatchObject({ settings: DEFAULTS });
  });
  afterAll(() => s.stop());

  const readSettings = (token: string | undefined) => run(s, token, TOKEN_SETTINGS);
  const keyOf = async (input: Record<string, unknown> = {}) => {
    const app = await createSubscribedApplication(s, owner.token, settingsApiId);
    const ref = { applicationId: app.id, keyType: "PRODUCTION" };
    return { ref, issued: await mustGenerateKeys(s, owner.token, { ...ref, ...input }) };
  };
  const lifetime = (token: TokenView) =>
    token.expiresAt === null ? null : (Date.parse(token.expiresAt) - Date.parse(token.issuedAt)) / 1000;

  it("shows an admin the defaults seeded from the environment", async () => {
    expect(await readSettings(admin)).toEqual({ __typename: "TokenSettings", ...DEFAULTS });
  });

  it("applies a changed default validity to later tokens only", async () => {
    const earlier = await keyOf();
    expect(await updateTokenSettings(s, admin, { applicationValidity: 120 })).toEqual({
      __typename: "UpdateTokenSettingsPayload",
      settings: { ...DEFAULTS, applicationValidity: 120 },
    });
    expect(await readSettings(admin)).toMatchObject({ applicationValidity: 120 });
    const later = await keyOf();
    expect(lifetime(later.issued.token.token)).toBe(120);
    // A key without its own validity follows the default; one with its own keeps it.
    expect(lifetime((await mustRegenerateToken(s, owner.token, earlier.ref)).token.token)).toBe(120);
    const own = await keyOf({ validityPeriod: 900 });
    expect(lifetime(own.issued.token.token)).toBe(900);
    // The earlier token itself did not move.
    expect(lifetime(earlier.issued.token.token)).toBe(3600);
  });

  it("applies a negative default: later tokens never expire", async () => {
    await updateTokenSettings(s, admin, { applicationValidity: -1 });
    const { issued } = await keyOf();
    expect(issued.token.expiresIn).toBeNull();
    expect(issued.token.token.expiresAt).toBeNull();
  });

  it("caps every validity period with maxValidity", async () => {
    const long = await keyOf({ validityPeriod: 3600 });
    const never = await keyOf({ validityPeriod: -1 });
    // The defaults themselves must fit under the cap.
    expect(await updateTokenSettings(s, admin, { maxValidity: 600 })).toEqual(
      invalid("applicationValidity", "applicationValidity must be at most 600 seconds"),
    );
    expect(await readSettings(admin)).toEqual({ __typename: "TokenSettings", ...DEFAULTS });
    const capped = { applicationValidity: 300, userValidity: 300, refreshValidity: 600, maxValidity: 600 };
    expect(await updateTokenSettings(s, admin, capped)).toMatchObject({
      settings: { ...capped, allowNeverExpiring: true },
    });

    // Keys set before the cap get capped tokens; requests over the cap are refused.
    expect(lifetime((await mustRegenerateToken(s, owner.token, long.ref)).token.token)).toBe(600);
    expect(lifetime((await mustRegenerateToken(s, owner.token, never.ref)).token.token)).toBeNull();
    const over = invalid("validityPeriod", "validityPeriod must be at most 600 seconds");
    const app = await createSubscribedApplication(s, owner.token, settingsApiId);
    expect(
      await generateKeys(s, owner.token, {
        applicationId: app.id,
        keyType: "PRODUCTION",
        validityPeriod: 601,
      }),
    ).toEqual(over);
    expect(await regenerateToken(s, owner.token, { ...long.ref, validityPeriod: 601 })).toEqual(over);
    expect(await setValidityPeriod(s, owner.token, { ...long.ref, validityPeriod: 601 })).toEqual(over);
    expect(
      lifetime(
        (
          await mustGenerateKeys(s, owner.token, {
            applicationId: app.id,
            keyType: "SANDBOX",
            validityPeriod: 600,
          })
        ).token.token,
      ),
    ).toBe(600);
    // A login follows the capped user validity.
    const { login } = await s
      .client()
      .request<any>(LOGIN, { input: { username: owner.username, password: owner.password } });
    expect(Date.parse(login.expiresAt) - Date.now()).toBeLessThanOrEqual(300_000);
    expect(Date.parse(login.expiresAt) - Date.now()).toBeGreaterThan(290_000);

    // null removes the cap.
    expect(await updateTokenSettings(s, admin, { maxValidity: null })).toMatchObject({
      settings: { maxValidity: null },
    });
    expect(
      lifetime(
        (await mustRegenerateToken(s, owner.token, { ...long.ref, validityPeriod: 7200 })).token.token,
      ),
    ).toBe(7200);
  });

  it("refuses never-expiring validity periods when allowNeverExpiring is false", async () => {
    const never = await keyOf({ validityPeriod: -1 });
    expect(await updateTokenSettings(s, admin, { allowNeverExpiring: false })).toMatchObject({
      settings: { ...DEFAULTS, allowNeverExpiring: false },
    });
    const refused = invalid("validityPeriod", "validityPeriod: never-expiring tokens are not allowed");
    const app = await createSubscribedApplication(s, owner.token, settingsApiId);
    expect(
      await generateKeys(s, owner.token, {
        applicationId: app.id,
        keyType: "PRODUCTION",
        validityPeriod: -1,
      }),
    ).toEqual(refused);
    expect(await regenerateToken(s, owner.token, { ...never.ref, validityPeriod: -1 })).toEqual(refused);
    expect(await setValidityPeriod(s, owner.token, { ...never.ref, validityPeriod: -1 })).toEqual(refused);
    // A key set to never expire before the change now gets tokens that expire: with no cap, at
    // the default validity (not at ten years)…
    expect(lifetime((await mustRegenerateToken(s, owner.token, never.ref)).token.token)).toBe(3600);
    // …and under a cap, at the cap, the longest the admin allows.
    expect(await updateTokenSettings(s, admin, { maxValidity: 172_800 })).toMatchObject({
      settings: { maxValidity: 172_800 },
    });
    expect(lifetime((await mustRegenerateToken(s, owner.token, never.ref)).token.token)).toBe(172_800);
    // Nor may a default be negative.
    expect(await updateTokenSettings(s, admin, { applicationValidity: -1 })).toEqual(
      invalid("applicationValidity", "applicationValidity: never-expiring tokens are not allowed"),
    );
  });

  it.each([
    [
      { applicationValidity: 0 },
      invalid(
        "applicationValidity",
        "applicationValidity must be a non-zero number of seconds (negative = never expires)",
      ),
    ],
    [
      { userValidity: 0 },
      invalid("userValidity", "userValidity must be a non-zero number of seconds (negative = never expires)"),
    ],
    [
      { refreshValidity: 0 },
      invalid(
        "refreshValidity",
        "refreshValidity must be a non-zero number of seconds (negative = never expires)",
      ),
    ],
    [{ maxValidity: 0 }, invalid("maxValidity", "maxValidity: must be a positive number of seconds")],
    [{ maxValidity: -5 }, invalid("maxValidity", "maxValidity: must be a positive number of seconds")],
  ])("rejects %j with a ValidationError and keeps the settings", async (input, expected) => {
    expect(await updateTokenSettings(s, admin, input)).toEqual(expected);
    expect(await readSettings(admin)).toEqual({ __typename: "TokenSettings", ...DEFAULTS });
  });

  it.each([
    ["a subscriber", () => owner.token, FORBIDDEN],
    ["no token", () => undefined, NO_TOKEN],
  ])("answers %s with a typed error, reading or changing", async (_name, caller, expected) => {
    expect(await readSettings(caller())).toEqual(expected);
    expect(await updateTokenSettings(s, caller(), { applicationValidity: 60 })).toEqual(expected);
    expect(await readSettings(admin)).toEqual({ __typename: "TokenSettings", ...DEFAULTS });
  });
});
