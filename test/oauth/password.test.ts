import * as oauth from "oauth4webapi";
import { describe, expect, it } from "vitest";
import { statementSent, USER_BY_NAME } from "../support/app.js";
import {
  ACCESS_TOKEN,
  accessTokenRow,
  eventsOfTokens,
  idOf,
  introspect,
  newClient,
  newUser,
  oauthError,
  passwordGrant,
  passwordRequest,
  REFRESH_TOKEN,
  refresh,
  useOAuthWorld,
  wire,
} from "../support/oauth.js";

const f = useOAuthWorld();

const credentials = () => ({ username: f.world.owner.username, password: f.world.owner.password });
const BAD_CREDENTIALS = oauthError(400, "invalid_grant", "invalid username or password");

describe("password grant (RFC 6749 §4.3, the Login API)", () => {
  it.each([
    ["client_secret_basic", "basic"],
    ["client_secret_post", "post"],
  ] as const)("issues a user token and a refresh token with %s, per §5.1", async (_name, method) => {
    const response = await passwordRequest(f.world, f.c, credentials(), method);
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
    expect([3599, 3600]).toContain((body as { expires_in: number }).expires_in);
    const parsed = await oauth.processGenericTokenEndpointResponse(f.world.as, f.c.client, response);
    expect(parsed.refresh_token).toBe((body as { refresh_token: string }).refresh_token);
  });

  it("issues the token to the user through the client's key, in a new refresh family, with an ISSUED event", async () => {
    const { access_token, refresh_token } = await passwordGrant(f.world, f.c);
    const [row] = await f.t.app.deps.database.raw(
      `select a.kind, a.user_id, a.client_id, a.application_id, a.application_key_id, a.key_type, a.scopes,
              f.user_id as family_user_id, f.client_id as family_client_id, r.family_id = f.id as paired
       from access_tokens a
       join refresh_token_families f on f.id = a.refresh_family_id
       join refresh_tokens r on r.access_token_id = a.id
       where a.id = $1 and r.id = $2`,
      [idOf(access_token), idOf(refresh_token!)],
    );
    expect(row).toEqual({
      kind: "USER",
      user_id: f.world.owner.id,
      client_id: f.c.clientId,
      application_id: f.c.applicationId,
      application_key_id: f.c.keyId,
      key_type: "PRODUCTION",
      scopes: ["read", "write"],
      family_user_id: f.world.owner.id,
      family_client_id: f.c.clientId,
      paired: true,
    });
    expect(await eventsOfTokens(f.t, [idOf(access_token)])).toEqual([
      { type: "ISSUED", reason: "CLIENT_REQUEST", token_id: idOf(access_token) },
    ]);
    expect(await introspect(f.world, f.c, access_token)).toMatchObject({
      active: true,
      username: f.world.owner.username,
      sub: f.world.owner.id,
    });
  });

  it("gives no refresh token when the key does not allow the refresh_token grant", async () => {
    const noRefresh = await newClient(f.world, { grantTypes: ["password"] });
    const response = await passwordRequest(f.world, noRefresh, credentials());
    const { status, body } = await wire(response);
    expect(status).toBe(200);
    expect(Object.keys(body as object).sort()).toEqual(["access_token", "expires_in", "scope", "token_type"]);
    const [row] = await f.t.app.deps.database.raw<{ refresh_family_id: string | null }>(
      "select refresh_family_id from access_tokens where id = $1",
      [idOf((body as { access_token: string }).access_token)],
    );
    expect(row).toEqual({ refresh_family_id: null });
  });

  it("narrows scope=read to exactly read, and the refreshed token keeps that scope", async () => {
    const issued = await passwordGrant(f.world, f.c, { scope: "read" });
    expect(issued.scope).toBe("read");
    const refreshed = await refresh(f.world, f.c, issued.refresh_token!);
    expect(refreshed.scope).toBe("read");
  });

  it("omits expires_in when the key's tokens never expire", async () => {
    const forever = await newClient(f.world, { validityPeriod: -1 });
    const response = await passwordRequest(f.world, forever, credentials());
    const { status, body } = await wire(response);
    expect(status).toBe(200);
    expect(body).toEqual({
      access_token: expect.stringMatching(ACCESS_TOKEN),
      token_type: "Bearer",
      refresh_token: expect.stringMatching(REFRESH_TOKEN),
      scope: "read write",
    });
    const row = await accessTokenRow(f.t, (body as { access_token: string }).access_token);
    expect(row.expires_at).toBeNull();
  });

  it("matches the username case-insensitively", async () => {
    const { access_token } = await passwordGrant(
      f.world,
      f.c,
      {},
      {
        username: f.world.owner.username.toUpperCase(),
        password: f.world.owner.password,
      },
    );
    expect(await introspect(f.world, f.c, access_token)).toMatchObject({ username: f.world.owner.username });
  });

  it("issues tokens to any user of the service through the same client", async () => {
    const other = await newUser(f.t, f.world.adminToken);
    const { access_token } = await passwordGrant(f.world, f.c, {}, other);
    expect(await introspect(f.world, f.c, access_token)).toMatchObject({
      active: true,
      username: other.username,
      sub: other.id,
    });
  });

  it("refuses a wrong password and an unknown user alike with invalid_grant", async () => {
    const wrong = await passwordRequest(f.world, f.c, { ...credentials(), password: "not-the-password" });
    expect(await wire(wrong)).toEqual(BAD_CREDENTIALS);
    const unknown = await passwordRequest(f.world, f.c, { username: "nobody-here", password: "whatever1" });
    expect(await wire(unknown)).toEqual(BAD_CREDENTIALS);
  });

  it("refuses credentials too long to be anyone's with invalid_grant, not invalid_request", async () => {
    const long = await passwordRequest(f.world, f.c, { ...credentials(), password: "p".repeat(257) });
    expect(await wire(long)).toEqual(BAD_CREDENTIALS);
    const longName = await passwordRequest(f.world, f.c, { username: "u".repeat(65), password: "whatever1" });
    expect(await wire(longName)).toEqual(BAD_CREDENTIALS);
  });

  it("refuses a user deleted after the password check with invalid_grant, not a server error", async () => {
    const gone = await newUser(f.t, f.world.adminToken);
    f.t.resetStatements();
    const grant = passwordRequest(f.world, f.c, { username: gone.username, password: gone.password });
    // Between the check and the issue (the check's scrypt takes tens of milliseconds).
    await statementSent(f.t, USER_BY_NAME);
    await f.t.app.deps.database.raw("delete from users where username = $1", [gone.username]);
    expect(await wire(await grant)).toEqual(BAD_CREDENTIALS);
  });

  it("refuses a disabled user with invalid_grant", async () => {
    const disabled = await newUser(f.t, f.world.adminToken);
    await passwordGrant(f.world, f.c, {}, disabled);
    await f.t.app.deps.database.raw("update users set disabled_at = now() where id = $1", [disabled.id]);
    const response = await passwordRequest(f.world, f.c, {
      username: disabled.username,
      password: disabled.password,
    });
    expect(await wire(response)).toEqual(BAD_CREDENTIALS);
  });

  it("surfaces invalid_grant to oauth4webapi as a ResponseBodyError", async () => {
    const response = await passwordRequest(f.world, f.c, { ...credentials(), password: "not-the-password" });
    await expect(
      oauth.processGenericTokenEndpointResponse(f.world.as, f.c.client, response),
    ).rejects.toMatchObject({
      code: oauth.RESPONSE_BODY_ERROR,
      status: 400,
      error: "invalid_grant",
      error_description: "invalid username or password",
    });
  });

  it.each([
    ["username", { password: "whatever1" }],
    ["password", { username: "someone" }],
  ])("refuses a request without %s with invalid_request", async (name, params) => {
    const response = await passwordRequest(f.world, f.c, params);
    expect(await wire(response)).toEqual(
      oauthError(400, "invalid_request", `the ${name} parameter is missing`),
    );
  });

  it("refuses a key that does not allow the password grant (the default) with unauthorized_client", async () => {
    const defaults = await newClient(f.world, { grantTypes: ["client_credentials", "refresh_token"] });
    const response = await passwordRequest(f.world, defaults, credentials());
    expect(await wire(response)).toEqual(
      oauthError(400, "unauthorized_client", "the client is not allowed the password grant"),
    );
  });

  it("refuses a scope outside the key's scopes with invalid_scope, before checking the password", async () => {
    const response = await passwordRequest(f.world, f.c, { ...credentials(), scope: "read admin" });
    expect(await wire(response)).toEqual(
      oauthError(400, "invalid_scope", "the scope 'admin' is not available to this client"),
    );
  });
});
