import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { READER_APPLICATION_NAME } from "../../src/db/client.js";
import { introspect as introspectValue } from "../../src/domain/introspection.js";
import { TokenReader } from "../../src/domain/token-reader.js";
import type { TestApp } from "../support/app.js";
import { mustRegenerateToken, revokeToken } from "../support/keys.js";
import {
  accessTokenRow,
  clientCredentials,
  createWorld,
  epoch,
  forgedValue,
  INVALID_CLIENT,
  INVALID_CLIENT_BASIC,
  idOf,
  introspect,
  introspectionRequest,
  JSON_NO_STORE,
  jwtWithHeader,
  newClient,
  newUser,
  passwordGrant,
  postForm,
  refresh,
  revoke,
  startOAuthApp,
  type TestClient,
  unknownValue,
  type World,
  wire,
} from "../support/oauth.js";

let t: TestApp;
let world: World;
let c: TestClient;
beforeAll(async () => {
  // Statement-count tests live here: keep the sweeper's background statements out of them.
  t = await startOAuthApp({ SWEEPER_INTERVAL_MS: "3600000" });
  world = await createWorld(t);
  c = await newClient(world, { allowedDomains: ["app.example.com", "*.example.org"] });
});
afterAll(() => t.stop());

/** RFC 7662 §2.2: an inactive token says nothing else, byte for byte. */
async function expectInactive(token: string) {
  const response = await introspectionRequest(world, c, token);
  expect(response.status).toBe(200);
  expect(Object.fromEntries(response.headers)).toMatchObject(JSON_NO_STORE);
  expect(await response.text()).toBe('{"active":false}');
}

describe("token introspection (RFC 7662)", () => {
  it.each([
    ["client_secret_basic", "basic"],
    ["client_secret_post", "post"],
  ] as const)(
    "describes an active application token to a client authenticated with %s",
    async (_name, method) => {
      const { access_token } = await clientCredentials(world, c, { scope: "read" });
      const row = await accessTokenRow(t, access_token);
      expect(await introspect(world, c, access_token, method)).toEqual({
        active: true,
        scope: "read",
        client_id: c.clientId,
        token_type: "Bearer",
        exp: epoch(row.expires_at!),
        iat: epoch(row.issued_at),
        sub: c.clientId,
        aud: t.url,
        iss: t.url,
        jti: row.id,
        token_kind: "APPLICATION",
        application_id: c.applicationId,
        key_type: "PRODUCTION",
        allowed_domains: ["app.example.com", "*.example.org"],
      });
      expect(epoch(row.expires_at!) - epoch(row.issued_at)).toBe(3600);
    },
  );

  it("gives a token kept through a regeneration grace period the grace period's end as exp", async () => {
    const kept = await newClient(world);
    const { access_token } = await clientCredentials(world, kept);
    const regenerated = await mustRegenerateToken(t, world.owner.token, {
      applicationId: kept.applicationId,
      keyType: "PRODUCTION",
      gracePeriod: 60,
    });
    const row = await accessTokenRow(t, access_token);
    const graceEnd = epoch(regenerated.previousTokensValidUntil!);
    expect(graceEnd).toBeLessThan(epoch(row.expires_at!));
    expect(await introspect(world, kept, access_token)).toMatchObject({ active: true, exp: graceEnd });
  });

  it("describes an active user token with the username and the user as subject", async () => {
    const { access_token } = await passwordGrant(world, c);
    const row = await accessTokenRow(t, access_token);
    expect(await introspect(world, c, access_token)).toEqual({
      active: true,
      scope: "read write",
      client_id: c.clientId,
      username: world.owner.username,
      token_type: "Bearer",
      exp: epoch(row.expires_at!),
      iat: epoch(row.issued_at),
      sub: world.owner.id,
      aud: t.url,
      iss: t.url,
      jti: row.id,
      token_kind: "USER",
      application_id: c.applicationId,
      key_type: "PRODUCTION",
      allowed_domains: ["app.example.com", "*.example.org"],
    });
  });

  it("describes an active refresh token", async () => {
    const { refresh_token } = await passwordGrant(world, c);
    const [row] = await t.app.deps.database.raw<{ issued_at: Date; expires_at: Date }>(
      "select issued_at, expires_at from refresh_tokens where id = $1",
      [idOf(refresh_token!)],
    );
    expect(await introspect(world, c, refresh_token!)).toEqual({
      active: true,
      client_id: c.clientId,
      username: world.owner.username,
      token_type: "refresh_token",
      exp: epoch(row!.expires_at),
      iat: epoch(row!.issued_at),
      sub: world.owner.id,
      iss: t.url,
    });
    expect(epoch(row!.expires_at) - epoch(row!.issued_at)).toBe(86_400);
  });

  it("omits exp for a token that never expires", async () => {
    const forever = await newClient(world, { validityPeriod: -1 });
    const { access_token } = await clientCredentials(world, forever);
    const described = await introspect(world, forever, access_token);
    expect(described).toMatchObject({ active: true, client_id: forever.clientId, allowed_domains: [] });
    expect(described).not.toHaveProperty("exp");
  });

  it("accepts token_type_hint, right or wrong (RFC 7662 §2.1)", async () => {
    const { access_token, refresh_token } = await passwordGrant(world, c);
    for (const [token, hint] of [
      [access_token, "access_token"],
      [access_token, "refresh_token"],
      [refresh_token!, "refresh_token"],
      [refresh_token!, "access_token"],
      [access_token, "something_else"],
    ] as const) {
      const response = await introspectionRequest(world, c, token, { token_type_hint: hint });
      const described = await oauth.processIntrospectionResponse(world.as, c.client, response);
      expect(described.active).toBe(true);
    }
  });

  describe('answers exactly {"active":false} for', () => {
    it.each([
      ["an unknown access token", () => unknownValue("tmat")],
      ["an unknown refresh token", () => unknownValue("tmrt")],
      ["garbage", () => "not-a-token"],
      ["something shaped like a JWT", () => "a.b.c"],
      ["a JWT whose kid holds a NUL byte", () => jwtWithHeader({ alg: "ES256", kid: "a\u0000b" })],
      ["a JWT whose kid names no key", () => jwtWithHeader({ alg: "RS256", kid: "k".repeat(43) })],
      ["a consumer secret", () => c.secret],
    ])("%s", async (_name, value) => {
      await expectInactive(value());
    });

    it("a known token id with the wrong secret", async () => {
      const { access_token, refresh_token } = await passwordGrant(world, c);
      await expectInactive(forgedValue(access_token));
      await expectInactive(forgedValue(refresh_token!));
    });

    it("an expired access token and an expired refresh token", async () => {
      const { access_token, refresh_token } = await passwordGrant(world, c);
      const { raw } = t.app.deps.database;
      await raw("update access_tokens set expires_at = now() - interval '1 second' where id = $1", [
        idOf(access_token),
      ]);
      await raw("update refresh_tokens set expires_at = now() - interval '1 second' where id = $1", [
        idOf(refresh_token!),
      ]);
      await expectInactive(access_token);
      await expectInactive(refresh_token!);
    });

    it("a token revoked through /revoke", async () => {
      const { access_token } = await clientCredentials(world, c);
      await revoke(world, c, access_token);
      await expectInactive(access_token);
    });

    it("a token its owner revoked through GraphQL", async () => {
      const { access_token } = await clientCredentials(world, c);
      const outcome = await revokeToken(t, world.owner.token, access_token);
      expect(outcome.__typename).toBe("RevokeTokenPayload");
      await expectInactive(access_token);
    });

    it("a refresh token that was used (rotated)", async () => {
      const { refresh_token } = await passwordGrant(world, c);
      await refresh(world, c, refresh_token!);
      await expectInactive(refresh_token!);
    });

    it("the tokens of a user who has been disabled", async () => {
      const user = await newUser(t, world.adminToken);
      const { access_token, refresh_token } = await passwordGrant(world, c, {}, user);
      // Straight in the database: users.test.ts covers updateUser, which also revokes the tokens.
      await t.app.deps.database.raw("update users set disabled_at = now() where id = $1", [user.id]);
      await expectInactive(access_token);
      await expectInactive(refresh_token!);
    });
  });

  describe("refuses", () => {
    it("an unauthenticated caller with 401 invalid_client", async () => {
      const { access_token } = await clientCredentials(world, c);
      expect(await wire(await postForm(t, "/introspect", null, `token=${access_token}`))).toEqual(
        INVALID_CLIENT,
      );
    });

    it("a wrong secret with 401 invalid_client, with a Basic challenge only for Basic", async () => {
      const { access_token } = await clientCredentials(world, c);
      const wrong = { ...c, secret: unknownValue("tmat") };
      expect(await wire(await introspectionRequest(world, wrong, access_token))).toEqual(
        INVALID_CLIENT_BASIC,
      );
      expect(await wire(await introspectionRequest(world, wrong, access_token, {}, "post"))).toEqual(
        INVALID_CLIENT,
      );
    });

    it("and oauth4webapi reports the failure", async () => {
      const wrong = { ...c, secret: unknownValue("tmat") };
      const response = await introspectionRequest(world, wrong, "anything", {}, "post");
      await expect(oauth.processIntrospectionResponse(world.as, c.client, response)).rejects.toMatchObject({
        code: oauth.RESPONSE_BODY_ERROR,
        status: 401,
        error: "invalid_client",
      });
    });
  });

  describe("reads in batches", () => {
    /** One of each: every answer must be its own token's, whatever else shares its batch. */
    async function mixedTokens() {
      const active = await clientCredentials(world, c);
      const pair = await passwordGrant(world, c);
      const revoked = await clientCredentials(world, c);
      await revoke(world, c, revoked.access_token);
      const expired = await clientCredentials(world, c);
      await t.app.deps.database.raw(
        "update access_tokens set expires_at = now() - interval '1 second' where id = $1",
        [idOf(expired.access_token)],
      );
      const used = await passwordGrant(world, c);
      await refresh(world, c, used.refresh_token!);
      const user = await newUser(t, world.adminToken);
      const ofDisabled = await passwordGrant(world, c, {}, user);
      await t.app.deps.database.raw("update users set disabled_at = now() where id = $1", [user.id]);
      const inactive = [
        revoked.access_token,
        expired.access_token,
        used.refresh_token!,
        ofDisabled.access_token,
        ofDisabled.refresh_token!,
        unknownValue("tmat"),
        unknownValue("tmrt"),
        forgedValue(active.access_token),
        forgedValue(pair.refresh_token!),
      ];
      return { active: [active.access_token, pair.access_token, pair.refresh_token!], inactive };
    }

    it("answers 20 concurrent introspections with fewer reads than requests", async () => {
      const issued = await Promise.all(Array.from({ length: 20 }, () => clientCredentials(world, c)));
      await introspect(world, c, issued[0]!.access_token); // the client's record is cached from here on
      t.resetStatements();
      const described = await Promise.all(issued.map((i) => introspect(world, c, i.access_token)));
      expect(described.map((d) => [d.active, d.jti])).toEqual(
        issued.map((i) => [true, idOf(i.access_token)]),
      );
      // Two statements per introspection without batching.
      expect(t.statements.length).toBeGreaterThan(0);
      expect(t.statements.length).toBeLessThan(issued.length);
    });

    it.runIf(process.env.DATABASE_URL !== undefined)(
      "reads through one connection of its own on PostgreSQL",
      async () => {
        const issued = await Promise.all(Array.from({ length: 40 }, () => clientCredentials(world, c)));
        const described = await Promise.all(issued.map((i) => introspect(world, c, i.access_token)));
        expect(described.every((d) => d.active === true)).toBe(true);
        const readers = await t.app.deps.database.raw<{ n: number }>(
          `select count(*)::int as n from pg_stat_activity
           where datname = current_database() and application_name = $1`,
          [READER_APPLICATION_NAME],
        );
        expect(readers[0]?.n).toBe(1);
      },
    );

    it("gives each concurrent request its own answer when active, inactive and unknown tokens meet", async () => {
      const { active, inactive } = await mixedTokens();
      const jwtClient = await newClient(world, { tokenFormat: "JWT" });
      const jwt = (await clientCredentials(world, jwtClient)).access_token;
      t.resetStatements();
      const [answers, jwtAnswer] = await Promise.all([
        Promise.all([...active, ...inactive].map((v) => introspectionRequest(world, c, v))),
        introspect(world, jwtClient, jwt),
      ]);
      const bodies = await Promise.all(answers.map((a) => a.text()));
      expect(bodies.slice(active.length)).toEqual(inactive.map(() => '{"active":false}'));
      expect(bodies.slice(0, active.length).map((b) => JSON.parse(b))).toMatchObject([
        { active: true, token_type: "Bearer", jti: idOf(active[0]!), sub: c.clientId },
        { active: true, token_type: "Bearer", jti: idOf(active[1]!), username: world.owner.username },
        { active: true, token_type: "refresh_token", sub: world.owner.id, username: world.owner.username },
      ]);
      expect(jwtAnswer).toMatchObject({
        active: true,
        client_id: jwtClient.clientId,
        token_kind: "APPLICATION",
      });
      expect(t.statements.length).toBeLessThan(active.length + inactive.length + 1);
    });

    it("reads a batch of mixed tokens with one statement", async () => {
      const { active, inactive } = await mixedTokens();
      t.resetStatements();
      const answers = await Promise.all([...active, ...inactive].map((v) => introspectValue(t.app.deps, v)));
      expect(t.statements).toHaveLength(1);
      expect(answers.slice(active.length)).toEqual(inactive.map(() => ({ active: false })));
      expect(answers.slice(0, active.length)).toMatchObject([
        { active: true, jti: idOf(active[0]!), token_kind: "APPLICATION" },
        { active: true, jti: idOf(active[1]!), token_kind: "USER" },
        { active: true, token_type: "refresh_token", client_id: c.clientId },
      ]);
    });

    it("holds a batch smaller than the last one for the rest of its callers, when told to gather", async () => {
      const statements: string[] = [];
      const reader = new TokenReader(t.app.deps.database, t.app.deps.log, (s) => statements.push(s), 2_000);
      const issued = await Promise.all(Array.from({ length: 8 }, () => clientCredentials(world, c)));
      const ids = issued.map((i) => idOf(i.access_token));
      const read = (id: string) => reader.readAccessToken(id).then((rows) => rows.map((r) => r.id));
      expect(await Promise.all(ids.slice(0, 4).map(read))).toEqual(ids.slice(0, 4).map((id) => [id]));
      expect(statements).toHaveLength(1);

      // Two callers now, two more a moment later: one read for all four, not two.
      const settled: string[] = [];
      const early = ids.slice(4, 6).map((id) => read(id).then((found) => settled.push(...found)));
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(settled).toEqual([]);
      const late = ids.slice(6).map((id) => read(id).then((found) => settled.push(...found)));
      await Promise.all([...early, ...late]);
      expect(statements).toHaveLength(2);
      expect(settled.sort()).toEqual(ids.slice(4).sort());
    });

    it("keeps one batch in flight: callers arriving meanwhile wait for it and go out as one", async () => {
      const issued = await Promise.all(Array.from({ length: 6 }, () => clientCredentials(world, c)));
      const ids = issued.map((i) => idOf(i.access_token));
      // The real database, each statement held until the test lets it go.
      const database = t.app.deps.database;
      const held: Array<() => void> = [];
      const batches: number[] = [];
      const gated: typeof database = {
        ...database,
        prepared: async (text, params, options) => {
          batches.push((params[0] as string[]).length);
          await new Promise<void>((release) => held.push(release));
          return database.prepared(text, params, options);
        },
      };
      const reader = new TokenReader(gated, t.app.deps.log);
      const read = (id: string) => reader.readAccessToken(id).then((rows) => rows.map((r) => r.id));
      const waitFor = async (count: number) => {
        while (batches.length < count) await new Promise((resolve) => setTimeout(resolve, 5));
      };

      const first = read(ids[0]!);
      await waitFor(1);
      // Five more callers, each in a later turn of the event loop, while the first batch is out.
      const rest: Promise<string[]>[] = [];
      for (const id of ids.slice(1)) {
        rest.push(read(id));
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(batches).toEqual([1]);
      held.shift()!();
      expect(await first).toEqual([ids[0]]);
      await waitFor(2);
      held.shift()!();
      expect(await Promise.all(rest)).toEqual(ids.slice(1).map((id) => [id]));
      expect(batches).toEqual([1, 5]);
    });
  });
});
