import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApp } from "../support/app.js";
import {
  clientCredentials,
  createWorld,
  eventsOfTokens,
  familyOf,
  forgedValue,
  INVALID_CLIENT,
  INVALID_CLIENT_BASIC,
  idOf,
  introspect,
  jwtWithHeader,
  NO_STORE,
  newClient,
  oauthError,
  passwordGrant,
  postForm,
  refresh,
  refreshRequest,
  revocationRequest,
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
let other: TestClient;
beforeAll(async () => {
  t = await startOAuthApp();
  world = await createWorld(t);
  c = await newClient(world);
  other = await newClient(world);
});
afterAll(() => t.stop());

/** RFC 7009 §2.2: an empty 200, not cacheable. */
const REVOKED = { status: 200, headers: NO_STORE, body: "" };

describe("token revocation (RFC 7009)", () => {
  it.each([
    ["client_secret_basic", "basic"],
    ["client_secret_post", "post"],
  ] as const)("revokes an application token for its client authenticated with %s", async (_name, method) => {
    const { access_token } = await clientCredentials(world, c);
    expect(await wire(await revocationRequest(world, c, access_token, {}, method))).toEqual(REVOKED);
    expect(await introspect(world, c, access_token)).toEqual({ active: false });
    expect(await eventsOfTokens(t, [idOf(access_token)])).toEqual([
      { type: "ISSUED", reason: "CLIENT_REQUEST", token_id: idOf(access_token) },
      { type: "REVOKED", reason: "CLIENT_REQUEST", token_id: idOf(access_token) },
    ]);
  });

  it("is accepted by oauth4webapi's processRevocationResponse", async () => {
    const { access_token } = await clientCredentials(world, c);
    const response = await revocationRequest(world, c, access_token);
    await expect(oauth.processRevocationResponse(response)).resolves.toBeUndefined();
  });

  it("revoking a refresh token revokes its family's access tokens too", async () => {
    const first = await passwordGrant(world, c);
    const second = await refresh(world, c, first.refresh_token!);
    await revoke(world, c, second.refresh_token!);
    for (const token of [second.refresh_token!, second.access_token, first.access_token]) {
      expect(await introspect(world, c, token)).toEqual({ active: false });
    }
    expect(await familyOf(t, second.refresh_token!)).toMatchObject({
      revoked: true,
      revoke_reason: "CLIENT_REQUEST",
    });
    const revoked = (await eventsOfTokens(t, [idOf(first.access_token), idOf(second.access_token)])).filter(
      (e) => e.type === "REVOKED",
    );
    expect(revoked.map((e) => e.reason)).toEqual(["CLIENT_REQUEST", "CLIENT_REQUEST"]);
    expect(await wire(await refreshRequest(world, c, second.refresh_token!))).toEqual(
      oauthError(400, "invalid_grant", "the refresh token is invalid, expired or revoked"),
    );
  });

  it("revoking an access token leaves its refresh token usable", async () => {
    const { access_token, refresh_token } = await passwordGrant(world, c);
    await revoke(world, c, access_token);
    expect(await introspect(world, c, access_token)).toEqual({ active: false });
    expect(await introspect(world, c, refresh_token!)).toMatchObject({ active: true });
    const next = await refresh(world, c, refresh_token!);
    expect(await introspect(world, c, next.access_token)).toMatchObject({ active: true });
    expect(await familyOf(t, refresh_token!)).toMatchObject({ revoked: false });
  });

  it.each([
    ["an access token", "access_token", "access_token"],
    ["a refresh token", "refresh_token", "refresh_token"],
    ["an access token", "refresh_token", "access_token"],
    ["a refresh token", "access_token", "refresh_token"],
    ["a refresh token", "unknown_type", "refresh_token"],
  ] as const)("revokes %s sent with token_type_hint=%s (§2.1: only a hint)", async (_name, hint, kind) => {
    const issued = await passwordGrant(world, c);
    const target = issued[kind]!;
    expect(await wire(await revocationRequest(world, c, target, { token_type_hint: hint }))).toEqual(REVOKED);
    expect(await introspect(world, c, target)).toEqual({ active: false });
  });

  it.each([
    ["an unknown access token", () => unknownValue("tmat")],
    ["an unknown refresh token", () => unknownValue("tmrt")],
    ["garbage", () => "not-a-token"],
    ["something shaped like a JWT", () => "a.b.c"],
    ["a JWT whose kid holds a NUL byte", () => jwtWithHeader({ alg: "ES256", kid: "a\u0000b" })],
    ["a JWT whose kid names no key", () => jwtWithHeader({ alg: "RS256", kid: "k".repeat(43) })],
  ])("answers 200 for %s (§2.2)", async (_name, value) => {
    expect(await wire(await revocationRequest(world, c, value()))).toEqual(REVOKED);
  });

  it("answers 200 for a forged value of a real token, and leaves the real one active", async () => {
    const { access_token, refresh_token } = await passwordGrant(world, c);
    expect(await wire(await revocationRequest(world, c, forgedValue(access_token)))).toEqual(REVOKED);
    expect(await wire(await revocationRequest(world, c, forgedValue(refresh_token!)))).toEqual(REVOKED);
    expect(await introspect(world, c, access_token)).toMatchObject({ active: true });
    expect(await introspect(world, c, refresh_token!)).toMatchObject({ active: true });
  });

  it("answers 200 for a token already revoked, without a second event", async () => {
    const { access_token } = await clientCredentials(world, c);
    await revoke(world, c, access_token);
    expect(await wire(await revocationRequest(world, c, access_token))).toEqual(REVOKED);
    const events = await eventsOfTokens(t, [idOf(access_token)]);
    expect(events.filter((e) => e.type === "REVOKED")).toHaveLength(1);
  });

  it("refuses another client's tokens with unauthorized_client and leaves them active (§2.1)", async () => {
    const app = await clientCredentials(world, c);
    const user = await passwordGrant(world, c);
    const jwtClient = await newClient(world, { tokenFormat: "JWT" });
    const jwt = (await clientCredentials(world, jwtClient)).access_token;
    const revoked = (await clientCredentials(world, c)).access_token;
    await revoke(world, c, revoked);
    const refused = oauthError(400, "unauthorized_client", "the token was issued to another client");
    // An inactive token of another client is refused too: the answer says nothing of its state.
    for (const token of [app.access_token, user.access_token, user.refresh_token!, jwt, revoked]) {
      expect(await wire(await revocationRequest(world, other, token))).toEqual(refused);
    }
    for (const token of [app.access_token, user.access_token, user.refresh_token!]) {
      expect(await introspect(world, c, token)).toMatchObject({ active: true, client_id: c.clientId });
    }
    expect(await introspect(world, jwtClient, jwt)).toMatchObject({ active: true });
    await expect(refresh(world, c, user.refresh_token!)).resolves.toMatchObject({ token_type: "bearer" });
    expect(await eventsOfTokens(t, [idOf(app.access_token)])).toEqual([
      { type: "ISSUED", reason: "CLIENT_REQUEST", token_id: idOf(app.access_token) },
    ]);
  });

  it("refuses an unauthenticated caller with 401 invalid_client, and revokes nothing", async () => {
    const { access_token } = await clientCredentials(world, c);
    expect(await wire(await postForm(t, "/revoke", null, `token=${access_token}`))).toEqual(INVALID_CLIENT);
    const wrong = { ...c, secret: other.secret };
    expect(await wire(await revocationRequest(world, wrong, access_token))).toEqual(INVALID_CLIENT_BASIC);
    expect(await wire(await revocationRequest(world, wrong, access_token, {}, "post"))).toEqual(
      INVALID_CLIENT,
    );
    expect(await introspect(world, c, access_token)).toMatchObject({ active: true });
  });

  it("refuses a request without token with invalid_request", async () => {
    expect(await wire(await postForm(t, "/revoke", c, "token_type_hint=access_token"))).toEqual(
      oauthError(400, "invalid_request", "the token parameter is missing"),
    );
  });
});
