import * as oauth from "oauth4webapi";
import { afterAll, beforeAll } from "vitest";
import { mintTokenValue } from "../../src/domain/token-value.js";
import { startTestApp, type TestApp } from "./app.js";
import { uniqueName } from "./fixtures.js";
import { createSubscriber, loginAdmin } from "./graphql.js";
import { createScopedApi, createSubscribedApplication, mustGenerateKeys } from "./keys.js";

/** Every OAuth response carries these (RFC 6749 §5.1, RFC 7009, RFC 7662). */
export const NO_STORE = { "cache-control": "no-store", pragma: "no-cache" } as const;
/** NO_STORE plus the JSON content type of every error and introspection body. */
export const JSON_NO_STORE = { ...NO_STORE, "content-type": "application/json; charset=utf-8" } as const;
/** The challenge a failed Basic authentication gets (RFC 6749 §5.2). */
export const BASIC_CHALLENGE = 'Basic realm="token-manager", charset="UTF-8"';

export const ACCESS_TOKEN = /^tmat_[0-9a-f]{32}_[0-9a-f]{72}$/;
export const REFRESH_TOKEN = /^tmrt_[0-9a-f]{32}_[0-9a-f]{72}$/;

/** oauth4webapi refuses http:// unless told otherwise; the test server is plain HTTP on 127.0.0.1. */
export const insecure = { [oauth.allowInsecureRequests]: true } as const;

/** An app whose ISSUER is its own URL, so that RFC 8414 discovery accepts it. */
export const startOAuthApp = (env: Record<string, string> = {}) => startTestApp({ issuerIsUrl: true, env });

/** RFC 8414 discovery through oauth4webapi: the endpoints every test then uses. */
export async function discover(t: TestApp): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(t.url);
  const response = await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...insecure });
  return oauth.processDiscoveryResponse(issuer, response);
}

export interface Owner {
  readonly id: string;
  readonly username: string;
  readonly password: string;
  /** Console token of the owner, for GraphQL. */
  readonly token: string;
}

/** A test app with what every OAuth test needs: the discovered server, an admin, an API, a subscriber. */
export interface World {
  readonly t: TestApp;
  readonly as: oauth.AuthorizationServer;
  readonly adminToken: string;
  readonly apiId: string;
  readonly owner: Owner;
}

/**
 * Set-up as real users do it, through GraphQL: the admin creates an API with scopes `read` and
 * `write` and a subscriber; the subscriber's applications subscribe to it (see `newClient`).
 */
export async function createWorld(t: TestApp): Promise<World> {
  const adminToken = await loginAdmin(t);
  const { id: apiId } = await createScopedApi(t, adminToken, ["read", "write"]);
  const owner = await newUser(t, adminToken);
  return { t, as: await discover(t), adminToken, apiId, owner };
}

/** The usual set-up of an OAuth test file: the app, its world and one client, for the whole file. */
export interface OAuthFixture {
  readonly t: TestApp;
  readonly world: World;
  readonly c: TestClient;
}

/**
 * Starts an OAuth test app before the file's tests (with `env`), creates its world and a client,
 * and stops it afterwards. Read the fields inside tests and hooks: they are set in `beforeAll`.
 */
export function useOAuthWorld(env: Record<string, string> = {}): OAuthFixture {
  const fixture = {} as { t: TestApp; world: World; c: TestClient };
  beforeAll(async () => {
    fixture.t = await startOAuthApp(env);
    fixture.world = await createWorld(fixture.t);
    fixture.c = await newClient(fixture.world);
  });
  afterAll(() => fixture.t?.stop());
  return fixture;
}

/** A new subscriber (resource owner), created by the admin. */
export async function newUser(t: TestApp, adminToken: string): Promise<Owner> {
  const username = uniqueName("owner");
  const created = await createSubscriber(t, adminToken, username);
  return { ...created, username };
}

export interface TestClient {
  readonly client: oauth.Client;
  readonly clientId: string;
  readonly secret: string;
  readonly applicationId: string;
  readonly keyId: string;
  readonly allowedDomains: string[];
}

export interface ClientOptions {
  grantTypes?: string[];
  scopes?: string[];
  validityPeriod?: number;
  allowedDomains?: string[];
  tokenFormat?: "OPAQUE" | "JWT";
  owner?: Owner;
}

/**
 * A confidential client: the owner creates an application subscribed to the API and generates
 * PRODUCTION keys (all three grants and both scopes unless told otherwise).
 */
export async function newClient(world: World, options: ClientOptions = {}): Promise<TestClient> {
  const owner = options.owner ?? world.owner;
  const app = await createSubscribedApplication(
    world.t,
    owner.token,
    world.apiId,
    options.tokenFormat ? { tokenFormat: options.tokenFormat } : {},
  );
  const { key, consumerKey, consumerSecret } = await mustGenerateKeys(world.t, owner.token, {
    applicationId: app.id,
    keyType: "PRODUCTION",
    grantTypes: options.grantTypes ?? ["client_credentials", "password", "refresh_token"],
    scopes: options.scopes ?? ["read", "write"],
    allowedDomains: options.allowedDomains ?? [],
    ...(options.validityPeriod !== undefined ? { validityPeriod: options.validityPeriod } : {}),
  });
  return {
    client: { client_id: consumerKey! },
    clientId: consumerKey!,
    secret: consumerSecret!,
    applicationId: app.id,
    keyId: key.id,
    allowedDomains: key.allowedDomains,
  };
}

export type AuthMethod = "basic" | "post";

/** client_secret_basic or client_secret_post, as oauth4webapi implements them. */
export const authOf = (c: TestClient, method: AuthMethod = "basic") =>
  method === "basic" ? oauth.ClientSecretBasic(c.secret) : oauth.ClientSecretPost(c.secret);

export const clientCredentialsRequest = (
  world: World,
  c: TestClient,
  params: Record<string, string> = {},
  method: AuthMethod = "basic",
) => oauth.clientCredentialsGrantRequest(world.as, c.client, authOf(c, method), params, insecure);

export const passwordRequest = (
  world: World,
  c: TestClient,
  params: Record<string, string>,
  method: AuthMethod = "basic",
) => oauth.genericTokenEndpointRequest(world.as, c.client, authOf(c, method), "password", params, insecure);

export const refreshRequest = (
  world: World,
  c: TestClient,
  refreshToken: string,
  params: Record<string, string> = {},
  method: AuthMethod = "basic",
) =>
  oauth.refreshTokenGrantRequest(world.as, c.client, authOf(c, method), refreshToken, {
    ...insecure,
    additionalParameters: params,
  });

/** client_credentials that must succeed, parsed by oauth4webapi. */
export async function clientCredentials(
  world: World,
  c: TestClient,
  params: Record<string, string> = {},
  method: AuthMethod = "basic",
) {
  const response = await clientCredentialsRequest(world, c, params, method);
  return oauth.processClientCredentialsResponse(world.as, c.client, response);
}

/** password grant that must succeed, for `user` (the world's owner by default). */
export async function passwordGrant(
  world: World,
  c: TestClient,
  params: Record<string, string> = {},
  user: Pick<Owner, "username" | "password"> = world.owner,
  method: AuthMethod = "basic",
) {
  const response = await passwordRequest(
    world,
    c,
    { username: user.username, password: user.password, ...params },
    method,
  );
  return oauth.processGenericTokenEndpointResponse(world.as, c.client, response);
}

/** refresh_token grant that must succeed. */
export async function refresh(
  world: World,
  c: TestClient,
  refreshToken: string,
  method: AuthMethod = "basic",
) {
  const response = await refreshRequest(world, c, refreshToken, {}, method);
  return oauth.processRefreshTokenResponse(world.as, c.client, response);
}

export const introspectionRequest = (
  world: World,
  c: TestClient,
  token: string,
  params: Record<string, string> = {},
  method: AuthMethod = "basic",
) =>
  oauth.introspectionRequest(world.as, c.client, authOf(c, method), token, {
    ...insecure,
    additionalParameters: params,
  });

/** RFC 7662 introspection that must succeed, parsed by oauth4webapi. */
export async function introspect(world: World, c: TestClient, token: string, method: AuthMethod = "basic") {
  const response = await introspectionRequest(world, c, token, {}, method);
  return oauth.processIntrospectionResponse(world.as, c.client, response);
}

export const revocationRequest = (
  world: World,
  c: TestClient,
  token: string,
  params: Record<string, string> = {},
  method: AuthMethod = "basic",
) =>
  oauth.revocationRequest(world.as, c.client, authOf(c, method), token, {
    ...insecure,
    additionalParameters: params,
  });

/** RFC 7009 revocation that must succeed (200). */
export async function revoke(
  world: World,
  c: TestClient,
  token: string,
  params: Record<string, string> = {},
  method: AuthMethod = "basic",
) {
  await oauth.processRevocationResponse(await revocationRequest(world, c, token, params, method));
}

const WIRE_HEADERS = ["cache-control", "pragma", "content-type", "www-authenticate", "retry-after"];

export interface Wire {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

/** What went over the wire: the status, the headers that matter here, and the JSON body (or text). */
export async function wire(response: Response): Promise<Wire> {
  const headers: Record<string, string> = {};
  for (const name of WIRE_HEADERS) {
    const value = response.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: keep the text, so that the assertion shows it.
  }
  return { status: response.status, headers, body };
}

/** The exact RFC 6749 §5.2 error response: status, no-store headers (plus `extra`) and body. */
export const oauthError = (
  status: number,
  error: string,
  description: string,
  extra: Record<string, string> = {},
): Wire => ({
  status,
  headers: { ...JSON_NO_STORE, ...extra },
  body: { error, error_description: description },
});

export const INVALID_CLIENT = oauthError(401, "invalid_client", "client authentication failed");
export const INVALID_CLIENT_BASIC = oauthError(401, "invalid_client", "client authentication failed", {
  "www-authenticate": BASIC_CHALLENGE,
});

/** A raw POST (for requests no OAuth client library would send). */
export const postRaw = (
  t: TestApp,
  path: string,
  body: BodyInit | undefined,
  headers: Record<string, string> = {},
) => fetch(`${t.url}${path}`, { method: "POST", headers, body });

/** A form POST with client_secret_basic credentials of `c`. */
export const postForm = (t: TestApp, path: string, c: TestClient | null, form: string) =>
  postRaw(t, path, form, {
    "content-type": "application/x-www-form-urlencoded",
    ...(c ? { authorization: basicHeader(c.clientId, c.secret) } : {}),
  });

/** RFC 6749 §2.3.1: both parts form-urlencoded, then base64. */
export const basicHeader = (clientId: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString("base64")}`;

/** The row id (UUID) of a `tmat_`/`tmrt_` value. */
export function idOf(value: string): string {
  const hex = value.split("_")[1]!;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Seconds since the epoch, as `iat`/`exp` are. */
export const epoch = (date: Date | string) => Math.floor(new Date(date).getTime() / 1000);

export interface AccessTokenRow {
  id: string;
  issued_at: Date;
  expires_at: Date | null;
  refresh_family_id: string | null;
}

/** The stored row of an access token value (opaque). */
export async function accessTokenRow(t: TestApp, value: string): Promise<AccessTokenRow> {
  const [row] = await t.app.deps.database.raw<AccessTokenRow>(
    "select id, issued_at, expires_at, refresh_family_id from access_tokens where id = $1",
    [idOf(value)],
  );
  if (!row) throw new Error("no such access token");
  return row;
}

export interface EventRow {
  type: string;
  reason: string | null;
  token_id: string | null;
}

/** The token events of the given tokens, in order. */
export const eventsOfTokens = (t: TestApp, tokenIds: string[]) =>
  t.app.deps.database.raw<EventRow>(
    "select type, reason, token_id from token_events where token_id = any($1::uuid[]) order by id",
    [tokenIds],
  );

/** A well-formed value (valid checksum) that names no token of ours. */
export const unknownValue = (prefix: "tmat" | "tmrt") => mintTokenValue(prefix).value;

/** A well-formed value with the id of `value` but another secret: found by id, refused by its hash. */
export const forgedValue = (value: string) =>
  mintTokenValue(value.slice(0, 4) as "tmat" | "tmrt", idOf(value)).value;

/** The rotation family of a refresh token, and how many access tokens it has produced. */
export async function familyOf(
  t: TestApp,
  refreshToken: string,
): Promise<{ id: string; revoke_reason: string | null; revoked: boolean; access_tokens: number }> {
  const [row] = await t.app.deps.database.raw<{
    id: string;
    revoke_reason: string | null;
    revoked: boolean;
    access_tokens: number;
  }>(
    `select f.id, f.revoke_reason, f.revoked_at is not null as revoked,
            (select count(*)::int from access_tokens a where a.refresh_family_id = f.id) as access_tokens
     from refresh_tokens r join refresh_token_families f on f.id = r.family_id where r.id = $1`,
    [idOf(refreshToken)],
  );
  if (!row) throw new Error("no such refresh token");
  return row;
}

/** A JWT-shaped value with this protected header, an empty payload and a signature of nothing. */
export const jwtWithHeader = (header: Record<string, unknown>) =>
  `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from("{}").toString("base64url")}.${"A".repeat(86)}`;
