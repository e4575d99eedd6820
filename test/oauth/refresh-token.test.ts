import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApp } from "../support/app.js";
import { regenerateToken } from "../support/keys.js";
import {
  ACCESS_TOKEN,
  createWorld,
  eventsOfTokens,
  familyOf,
  forgedValue,
  idOf,
  introspect,
  newClient,
  newUser,
  oauthError,
  passwordGrant,
  REFRESH_TOKEN,
  refresh,
  refreshRequest,
  revoke,
  startOAuthApp,
  type TestClient,
  unknownValue,
  type World,
  wire,
} from "../support/oauth.js";

const INVALID = oauthError(400, "invalid_grant", "the refresh token is invalid, expired or revoked");
const REUSED = oauthError(
  400,
  "invalid_grant",
  "the refresh token was already used: its token family has been revoked",
);

/** The pair a token response carries. */
const pairOf = (body: unknown) => {
  const { access_token, refresh_token } = body as { access_token: string; refresh_token: string };
  return { access_token, refresh_token };
};

describe("refresh_token grant (RFC 6749 §6) with rotation", () => {
  let t: TestApp;
  let world: World;
  let c: TestClient;
  beforeAll(async () => {
    t = await startOAuthApp();
    world = await createWorld(t);
    c = await newClient(world);
  });
  afterAll(() => t.stop());

  it.each([
    ["client_secret_basic", "basic"],
    ["client_secret_post", "post"],
  ] as const)(
    "rotates with %s: a new access token and a new refresh token of the same family",
    async (_name, method) => {
      const first = await passwordGrant(world, c);
      const response = await refreshRequest(world, c, first.refresh_token!, {}, method);
      const { status, headers, body } = await wire(response.clone());
      expect(status).toBe(200);
      expect(headers).toEqual({
        "cache-control": "no-store",
        pragma: "no-cache",
        "content-type": "application/json; charset=utf-8",
      });
      expect(body).toEqual({
        access_token: expect.stringMatching(ACCESS_TOKEN),
        token_type: "Bearer",
        expires_in: expect.any(Number),
        refresh_token: expect.stringMatching(REFRESH_TOKEN),
        scope: "read write",
      });
      const next = await oauth.processRefreshTokenResponse(world.as, c.client, response);
      expect(next.access_token).not.toBe(first.access_token);
      expect(next.refresh_token).not.toBe(first.refresh_token);
      const family = await familyOf(t, first.refresh_token!);
      expect(await familyOf(t, next.refresh_token!)).toEqual({ ...family, access_tokens: 2 });
      expect(family).toMatchObject({ revoked: false, access_tokens: 2 });
      expect(await eventsOfTokens(t, [idOf(first.access_token), idOf(next.access_token)])).toEqual([
        { type: "ISSUED", reason: "CLIENT_REQUEST", token_id: idOf(first.access_token) },
        { type: "REFRESHED", reason: "ROTATED", token_id: idOf(next.access_token) },
      ]);
      // The used refresh token is spent; the new one and both access tokens are active.
      expect(await introspect(world, c, first.refresh_token!)).toEqual({ active: false });
      expect(await introspect(world, c, next.refresh_token!)).toMatchObject({ active: true });
      expect(await introspect(world, c, next.access_token)).toMatchObject({
        active: true,
        username: world.owner.username,
      });
    },
  );

  it("answers a retry within the window (a lost response) with the very same pair", async () => {
    const first = await passwordGrant(world, c);
    const a = await wire(await refreshRequest(world, c, first.refresh_token!));
    const b = await wire(await refreshRequest(world, c, first.refresh_token!));
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(pairOf(b.body)).toEqual(pairOf(a.body));
    expect(b.body).toMatchObject({ token_type: "Bearer", scope: "read write" });
    expect(await familyOf(t, first.refresh_token!)).toMatchObject({ revoked: false, access_tokens: 2 });
    // The retried pair is the live one: its refresh token still rotates.
    const next = await refresh(world, c, pairOf(b.body).refresh_token);
    expect(next.refresh_token).not.toBe(pairOf(b.body).refresh_token);
  });

  it("trips reuse detection when the old token is retried after the new one was used", async () => {
    const first = await passwordGrant(world, c);
    const second = await refresh(world, c, first.refresh_token!);
    const third = await refresh(world, c, second.refresh_token!);
    const retry = await refreshRequest(world, c, first.refresh_token!);
    expect(await wire(retry)).toEqual(REUSED);
    expect(await familyOf(t, first.refresh_token!)).toMatchObject({
      revoked: true,
      revoke_reason: "REFRESH_REUSE_DETECTED",
    });
    for (const token of [third.refresh_token!, third.access_token, second.access_token, first.access_token]) {
      expect(await introspect(world, c, token)).toEqual({ active: false });
    }
    expect(await wire(await refreshRequest(world, c, third.refresh_token!))).toEqual(INVALID);
  });

  it("refreshes many times in a row, each token once", async () => {
    let current = await passwordGrant(world, c);
    const seen = new Set([current.refresh_token]);
    for (let i = 0; i < 5; i++) {
      current = await refresh(world, c, current.refresh_token!);
      seen.add(current.refresh_token);
    }
    expect(seen.size).toBe(6);
    expect(await familyOf(t, current.refresh_token!)).toMatchObject({ revoked: false, access_tokens: 6 });
  });

  it("narrows the scope on refresh, within what was originally granted (§6), and never beyond it", async () => {
    const first = await passwordGrant(world, c, { scope: "read write" });
    const narrowed = await wire(await refreshRequest(world, c, first.refresh_token!, { scope: "write" }));
    expect(narrowed).toMatchObject({ status: 200, body: { scope: "write" } });
    // "If omitted, treated as equal to the scope originally granted": not the last one asked for.
    const omitted = await wire(await refreshRequest(world, c, pairOf(narrowed.body).refresh_token));
    expect(omitted).toMatchObject({ status: 200, body: { scope: "read write" } });
    const onlyRead = await passwordGrant(world, c, { scope: "read" });
    const widened = await refreshRequest(world, c, onlyRead.refresh_token!, { scope: "read write" });
    expect(await wire(widened)).toEqual(
      oauthError(400, "invalid_scope", "the scope 'write' is not available to this client"),
    );
  });

  it("keeps a refresh within the granted scopes once the access tokens it came with are gone", async () => {
    const first = await passwordGrant(world, c, { scope: "read" });
    await t.app.deps.database.raw("delete from access_tokens where id = $1", [idOf(first.access_token)]);
    const refreshed = await wire(await refreshRequest(world, c, first.refresh_token!));
    expect(refreshed).toMatchObject({ status: 200, body: { scope: "read" } });
  });

  it("drops the scopes the key no longer allows", async () => {
    const own = await newClient(world);
    const first = await passwordGrant(world, own, { scope: "read write" });
    const outcome = await regenerateToken(t, world.owner.token, {
      applicationId: own.applicationId,
      keyType: "PRODUCTION",
      scopes: ["read"],
    });
    expect(outcome.__typename).toBe("RegenerateTokenPayload");
    const refreshed = await wire(await refreshRequest(world, own, first.refresh_token!));
    expect(refreshed).toMatchObject({ status: 200, body: { scope: "read" } });
  });

  it("omits expires_in when the key's tokens never expire", async () => {
    const forever = await newClient(world, { validityPeriod: -1 });
    const first = await passwordGrant(world, forever);
    const { status, body } = await wire(await refreshRequest(world, forever, first.refresh_token!));
    expect(status).toBe(200);
    expect(body).toEqual({
      access_token: expect.stringMatching(ACCESS_TOKEN),
      token_type: "Bearer",
      refresh_token: expect.stringMatching(REFRESH_TOKEN),
      scope: "read write",
    });
  });

  describe("refuses with invalid_grant", () => {
    it("an expired refresh token", async () => {
      const { refresh_token } = await passwordGrant(world, c);
      await t.app.deps.database.raw(
        "update refresh_tokens set expires_at = now() - interval '1 second' where id = $1",
        [idOf(refresh_token!)],
      );
      expect(await wire(await refreshRequest(world, c, refresh_token!))).toEqual(INVALID);
    });

    it("a revoked refresh token", async () => {
      const { refresh_token } = await passwordGrant(world, c);
      await revoke(world, c, refresh_token!);
      expect(await wire(await refreshRequest(world, c, refresh_token!))).toEqual(INVALID);
    });

    it.each([
      ["an unknown well-formed refresh token", () => unknownValue("tmrt")],
      ["garbage", () => "not-a-refresh-token"],
      ["an access token", () => unknownValue("tmat")],
    ])("%s", async (_name, value) => {
      expect(await wire(await refreshRequest(world, c, value()))).toEqual(INVALID);
    });

    it("a known refresh token id with the wrong secret, which leaves the real one working", async () => {
      const { refresh_token } = await passwordGrant(world, c);
      expect(await wire(await refreshRequest(world, c, forgedValue(refresh_token!)))).toEqual(INVALID);
      await expect(refresh(world, c, refresh_token!)).resolves.toMatchObject({ token_type: "bearer" });
    });

    it("another client's refresh token, which stays usable by its own client", async () => {
      const other = await newClient(world);
      const { refresh_token } = await passwordGrant(world, c);
      expect(await wire(await refreshRequest(world, other, refresh_token!))).toEqual(
        oauthError(400, "invalid_grant", "the refresh token was issued to another client"),
      );
      expect(await familyOf(t, refresh_token!)).toMatchObject({ revoked: false, access_tokens: 1 });
      await expect(refresh(world, c, refresh_token!)).resolves.toMatchObject({ token_type: "bearer" });
    });

    it("the refresh token of a user who has since been disabled", async () => {
      const user = await newUser(t, world.adminToken);
      const { refresh_token } = await passwordGrant(world, c, {}, user);
      await t.app.deps.database.raw("update users set disabled_at = now() where id = $1", [user.id]);
      expect(await wire(await refreshRequest(world, c, refresh_token!))).toEqual(INVALID);
    });
  });

  it("refuses a key that does not allow the refresh_token grant with unauthorized_client", async () => {
    const { refresh_token } = await passwordGrant(world, c);
    const noRefresh = await newClient(world, { grantTypes: ["client_credentials", "password"] });
    expect(await wire(await refreshRequest(world, noRefresh, refresh_token!))).toEqual(
      oauthError(400, "unauthorized_client", "the client is not allowed the refresh_token grant"),
    );
  });

  it("gives one new pair to 50 concurrent refreshes with one refresh token", async () => {
    const racer = await newClient(world);
    const first = await passwordGrant(world, racer);
    const responses = await Promise.all(
      Array.from({ length: 50 }, async () => wire(await refreshRequest(world, racer, first.refresh_token!))),
    );
    // Every request is a retry of the first within the window: all succeed, all with the same pair.
    expect(responses.map((r) => r.status)).toEqual(Array(50).fill(200));
    const pairs = new Set(responses.map((r) => JSON.stringify(pairOf(r.body))));
    expect(pairs.size).toBe(1);
    const winner = pairOf(responses[0]!.body);
    expect(winner.refresh_token).not.toBe(first.refresh_token);

    // At most one new pair exists: the original access token plus one.
    const family = await familyOf(t, first.refresh_token!);
    expect(family).toMatchObject({ revoked: false, access_tokens: 2 });
    const [{ count } = { count: -1 }] = await t.app.deps.database.raw<{ count: number }>(
      "select count(*)::int as count from refresh_tokens where family_id = $1",
      [family.id],
    );
    expect(count).toBe(2);
    expect(await introspect(world, racer, winner.access_token)).toMatchObject({ active: true });

    // The family is consistent: the new refresh token rotates, once.
    const next = await refresh(world, racer, winner.refresh_token);
    expect(next.refresh_token).not.toBe(winner.refresh_token);
    expect(await familyOf(t, first.refresh_token!)).toMatchObject({ revoked: false, access_tokens: 3 });
    expect(await introspect(world, racer, next.access_token)).toMatchObject({ active: true });
  });
});

describe("refresh token reuse after the retry window (REFRESH_RETRY_WINDOW=0)", () => {
  let t: TestApp;
  let world: World;
  let c: TestClient;
  beforeAll(async () => {
    t = await startOAuthApp({ REFRESH_RETRY_WINDOW: "0" });
    world = await createWorld(t);
    c = await newClient(world);
  });
  afterAll(() => t.stop());

  it("revokes the whole family: the newest refresh token and every access token of it", async () => {
    const first = await passwordGrant(world, c);
    const second = await refresh(world, c, first.refresh_token!);
    expect(await introspect(world, c, first.access_token)).toMatchObject({ active: true });

    expect(await wire(await refreshRequest(world, c, first.refresh_token!))).toEqual(REUSED);

    for (const token of [second.refresh_token!, second.access_token, first.access_token]) {
      expect(await introspect(world, c, token)).toEqual({ active: false });
    }
    expect(await familyOf(t, first.refresh_token!)).toMatchObject({
      revoked: true,
      revoke_reason: "REFRESH_REUSE_DETECTED",
    });
    const revoked = (await eventsOfTokens(t, [idOf(first.access_token), idOf(second.access_token)]))
      .filter((e) => e.type === "REVOKED")
      .sort((x, y) => x.token_id!.localeCompare(y.token_id!));
    expect(revoked).toEqual(
      [idOf(first.access_token), idOf(second.access_token)].sort().map((id) => ({
        type: "REVOKED",
        reason: "REFRESH_REUSE_DETECTED",
        token_id: id,
      })),
    );
    // The legitimate holder of the newest token is logged out too (RFC 9700 §4.14.2).
    expect(await wire(await refreshRequest(world, c, second.refresh_token!))).toEqual(INVALID);
  });

  it("leaves other families of the same user and client alone", async () => {
    const mine = await passwordGrant(world, c);
    const other = await passwordGrant(world, c);
    await refresh(world, c, mine.refresh_token!);
    expect(await wire(await refreshRequest(world, c, mine.refresh_token!))).toEqual(REUSED);
    expect(await introspect(world, c, other.access_token)).toMatchObject({ active: true });
    await expect(refresh(world, c, other.refresh_token!)).resolves.toMatchObject({ token_type: "bearer" });
  });
});
