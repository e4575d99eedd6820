import { request as httpRequest } from "node:http";
import type { TestApp } from "./app.js";
import { uniqueName } from "./fixtures.js";
import { createApiAs, createSubscriber, ERROR_FIELDS, loginAdmin, SUBSCRIBE } from "./graphql.js";
import { createSubscribedApplication, mustGenerateKeys } from "./keys.js";

/** The challenge every 401 of GET /validate starts with (RFC 6750 §3). */
export const REALM = 'Bearer realm="token-manager"';

/** What a gateway forwards to GET /validate about the call it is about to make. */
export interface GatewayCall {
  /** The bearer token; `authorization` overrides it with a raw header. */
  readonly token?: string;
  readonly authorization?: string;
  /** The original URI, sent as X-Original-URI (nginx); omit for Envoy style. */
  readonly uri?: string;
  /** The original method, sent as X-Original-Method (nginx). */
  readonly method?: string;
  /** The client domain, in the header named `domainHeader` (default `domain`). */
  readonly domain?: string;
  readonly domainHeader?: string;
  /** Envoy style: the request line's path (default /validate) and method (default GET). */
  readonly path?: string;
  readonly requestMethod?: string;
}

/** The answer as a gateway sees it: status, the headers that matter, and the JSON body (or ""). */
export interface GatewayAnswer {
  readonly status: number;
  /** `cache-control`, `www-authenticate` and every `x-auth-*` header. */
  readonly headers: Record<string, string>;
  readonly body: unknown;
}

/** Calls GET /validate of `t` the way nginx `auth_request` (or, with `path`, Envoy) would. */
export async function validate(t: TestApp, call: GatewayCall): Promise<GatewayAnswer> {
  const headers: Record<string, string> = {};
  if (call.authorization !== undefined) headers.authorization = call.authorization;
  else if (call.token !== undefined) headers.authorization = `Bearer ${call.token}`;
  if (call.uri !== undefined) headers["x-original-uri"] = call.uri;
  if (call.method !== undefined) headers["x-original-method"] = call.method;
  if (call.domain !== undefined) headers[call.domainHeader ?? "domain"] = call.domain;
  const response = await fetch(`${t.url}${call.path ?? "/validate"}`, {
    method: call.requestMethod ?? "GET",
    headers,
  });
  return answerOf(response);
}

/** Status, relevant headers and parsed body of a response. */
export async function answerOf(response: Response): Promise<GatewayAnswer> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    if (name === "cache-control" || name === "www-authenticate" || name.startsWith("x-auth-")) {
      headers[name] = value;
    }
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text === "" ? "" : JSON.parse(text);
  } catch {
    // Not JSON: keep the text, so that a failed assertion shows it.
  }
  return { status: response.status, headers, body };
}

/** The exact 401 of GET /validate: `error` null = no token was sent (RFC 6750 §3.1). */
export const unauthorizedAnswer = (description: string, error: string | null = "invalid_token") => ({
  status: 401,
  headers: {
    "cache-control": "no-store",
    "www-authenticate": error ? `${REALM}, error="${error}", error_description="${description}"` : REALM,
  },
  body: { error: error ?? "unauthorized", error_description: description },
});

/** The exact 403 of GET /validate for anything but a missing scope. */
export const forbiddenAnswer = (description: string) => ({
  status: 403,
  headers: { "cache-control": "no-store" },
  body: { error: "forbidden", error_description: description },
});

/** The exact 403 for a missing scope: RFC 6750 §3.1 `insufficient_scope` naming the resource's scopes. */
export const insufficientScopeAnswer = (scope: string) => ({
  status: 403,
  headers: {
    "cache-control": "no-store",
    "www-authenticate": `${REALM}, error="insufficient_scope", scope="${scope}"`,
  },
  body: { error: "insufficient_scope", error_description: "the token lacks a scope this resource requires" },
});

/** The resources of the shop API every gateway test calls, with the scopes each one requires. */
export const SHOP_RESOURCES = [
  { method: "GET", pathPattern: "/items", scopes: ["read"] },
  { method: "GET", pathPattern: "/items/{id}", scopes: ["read"] },
  { method: "POST", pathPattern: "/items", scopes: ["write"] },
  { method: "DELETE", pathPattern: "/items/{id}", scopes: ["admin"] },
  { method: "GET", pathPattern: "/status", scopes: [] },
] as const;

/** Set-up through GraphQL, as real users do it: an admin, a subscriber and two APIs. */
export interface GatewayWorld {
  readonly t: TestApp;
  readonly adminToken: string;
  readonly owner: {
    readonly id: string;
    readonly username: string;
    readonly password: string;
    readonly token: string;
  };
  /** `/shop-…/v1`, with SHOP_RESOURCES and scopes read, write, admin; every key's application subscribes. */
  readonly shop: { readonly id: string; readonly prefix: string };
  /** `/other-…/v1`, which no application subscribes to. */
  readonly other: { readonly id: string; readonly prefix: string };
}

export async function createGatewayWorld(t: TestApp): Promise<GatewayWorld> {
  const adminToken = await loginAdmin(t);
  const username = uniqueName("owner");
  const owner = { ...(await createSubscriber(t, adminToken, username)), username };
  const shopContext = `/${uniqueName("shop")}`;
  const shop = await createApiAs(t.client(adminToken), {
    name: "Shop",
    context: shopContext,
    version: "v1",
    scopes: [{ name: "read" }, { name: "write" }, { name: "admin" }],
    resources: SHOP_RESOURCES,
  });
  const otherContext = `/${uniqueName("other")}`;
  const other = await createApiAs(t.client(adminToken), {
    name: "Other",
    context: otherContext,
    version: "v1",
  });
  return {
    t,
    adminToken,
    owner,
    shop: { id: shop.id, prefix: `${shopContext}/v1` },
    other: { id: other.id, prefix: `${otherContext}/v1` },
  };
}

export interface KeyOptions {
  readonly allowedDomains?: string[];
  readonly scopes?: string[];
  readonly grantTypes?: string[];
  readonly validityPeriod?: number;
  readonly tokenFormat?: "OPAQUE" | "JWT";
}

export interface GatewayKey {
  readonly applicationId: string;
  readonly consumerKey: string;
  readonly consumerSecret: string;
  /** The application access token generateKeys issued. */
  readonly token: string;
  readonly tokenId: string;
}

/** A new application of the owner, subscribed to the shop API, with PRODUCTION keys. */
export async function newKey(world: GatewayWorld, options: KeyOptions = {}): Promise<GatewayKey> {
  const { t, owner, shop } = world;
  const app = await createSubscribedApplication(
    t,
    owner.token,
    shop.id,
    options.tokenFormat ? { tokenFormat: options.tokenFormat } : {},
  );
  const issued = await mustGenerateKeys(t, owner.token, {
    applicationId: app.id,
    keyType: "PRODUCTION",
    allowedDomains: options.allowedDomains ?? [],
    scopes: options.scopes ?? ["read", "write"],
    ...(options.grantTypes ? { grantTypes: options.grantTypes } : {}),
    ...(options.validityPeriod !== undefined ? { validityPeriod: options.validityPeriod } : {}),
  });
  return {
    applicationId: app.id,
    consumerKey: issued.consumerKey!,
    consumerSecret: issued.consumerSecret!,
    token: issued.token.accessToken,
    tokenId: issued.token.token.id,
  };
}

/** Another application token of `key` (regenerating would end the first one's life). */
export async function freshToken(t: TestApp, key: GatewayKey, scope?: string): Promise<string> {
  const body = await tokenRequest(t, key, { grant_type: "client_credentials", ...(scope ? { scope } : {}) });
  return body.access_token;
}

/** POST /token with client_secret_basic; throws unless it answers 200. */
export async function tokenRequest(
  t: TestApp,
  key: Pick<GatewayKey, "consumerKey" | "consumerSecret">,
  form: Record<string, string>,
): Promise<{ access_token: string; scope: string }> {
  const basic = Buffer.from(
    `${encodeURIComponent(key.consumerKey)}:${encodeURIComponent(key.consumerSecret)}`,
  ).toString("base64");
  const response = await fetch(`${t.url}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${basic}` },
    body: new URLSearchParams(form).toString(),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`POST /token answered ${response.status}: ${text}`);
  return JSON.parse(text);
}

const UNSUBSCRIBE = `
  mutation Unsubscribe($input: UnsubscribeInput!) {
    unsubscribe(input: $input) { __typename ${ERROR_FIELDS} }
  }
`;

/**
 * Subscribes (or unsubscribes) the key's application to the shop API through `t`'s GraphQL API,
 * as its owner; returns the payload's __typename.
 */
export async function setShopSubscription(
  t: TestApp,
  world: GatewayWorld,
  key: Pick<GatewayKey, "applicationId">,
  subscribed: boolean,
): Promise<string> {
  const input = { applicationId: key.applicationId, apiId: world.shop.id };
  const data = await t
    .client(world.owner.token)
    .request<Record<string, { __typename: string }>>(subscribed ? SUBSCRIBE : UNSUBSCRIBE, { input });
  return Object.values(data)[0]!.__typename;
}

/** How many times `t` read a token's grant from the database since `resetStatements()` (cache misses). */
export const grantLoads = (t: TestApp) =>
  t.statements.filter((sql) => sql.includes('left join "application_keys" on')).length;

/**
 * An HTTP request whose request line is sent as is (fetch resolves dot segments first), answered
 * as a fetch Response.
 */
export function rawRequest(
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Response> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: hostname, port, path, method: options.method ?? "GET", headers: options.headers ?? {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            for (const one of Array.isArray(value) ? value : value === undefined ? [] : [value]) {
              headers.append(name, one);
            }
          }
          resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0, headers }));
        });
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}
