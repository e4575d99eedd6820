import { eq } from "drizzle-orm";
import {
  accessTokens,
  apiResources,
  apis,
  applicationKeys,
  subscriptions,
  users,
} from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { accessTokenIdOf, endOf } from "./token.js";
import { idOfShapedValue, parseTokenValue, TOKEN_PREFIXES, VerifiedValues } from "./token-value.js";
import { HOST_SOURCE } from "./validation.js";
import { ValidationCache } from "./validation-cache.js";

/** What a gateway forwards about the call it is about to make. */
export interface GatewayRequest {
  readonly authorization: string | undefined;
  readonly domain: string | undefined;
  readonly method: string;
  readonly uri: string;
}

/** The answer: 200 with identity headers, 401 (RFC 6750 §3.1) or 403. */
export type GatewayDecision =
  | { readonly status: 200; readonly headers: Readonly<Record<string, string>> }
  | { readonly status: 401; readonly error: "invalid_token" | null; readonly description: string }
  | {
      readonly status: 403;
      readonly error: "insufficient_scope" | "forbidden";
      readonly description: string;
      readonly scope?: string;
    };

/** Everything the check needs about one token, as cached. */
export interface TokenGrant {
  readonly id: string;
  readonly tokenHash: string;
  readonly kind: "APPLICATION" | "USER";
  readonly clientId: string;
  readonly subject: string;
  readonly username: string | null;
  readonly applicationId: string | null;
  readonly keyType: string | null;
  readonly scopes: readonly string[];
  /** Epoch ms; null = never. The earlier of expiry and a scheduled (grace period) revocation. */
  readonly endsAt: number | null;
  readonly revoked: boolean;
  readonly allowedDomains: readonly string[];
  readonly apis: readonly ApiGrant[];
}

interface ApiGrant {
  /** `/context/version` */
  readonly prefix: string;
  readonly resources: readonly {
    readonly method: string;
    readonly pattern: RegExp;
    readonly scopes: readonly string[];
  }[];
}

const BEARER = /^Bearer +([A-Za-z0-9._~+/=-]+) *$/i;
const unauthorized = (
  description: string,
  error: "invalid_token" | null = "invalid_token",
): GatewayDecision => ({
  status: 401,
  error,
  description,
});
const forbidden = (description: string): GatewayDecision => ({
  status: 403,
  error: "forbidden",
  description,
});

/**
 * The gateway check behind GET /validate: token active, API subscribed, domain allowed, resource
 * scopes held. Tokens come from a per-instance cache that revocation events clear at once.
 */
export function createGatewayCheck(deps: Deps) {
  const cache = new ValidationCache(deps, (id) => loadGrant(deps, id));
  const verified = new VerifiedValues<TokenGrant>();
  const matches = (grant: TokenGrant, value: string) =>
    verified.verify(deps.secrets.tokenHashKeys, grant, value, grant.tokenHash);

  async function check(request: GatewayRequest): Promise<GatewayDecision> {
    const value = bearerValue(request);
    if (typeof value !== "string") return value;
    const id = await accessTokenIdOf(deps, value);
    if (!id) return unauthorized("the token is malformed or not issued here");
    return decide(await cache.get(id), value, request);
  }

  /**
   * The same decision as `check`, synchronously, when it needs no I/O: a missing or malformed
   * header, or an opaque token whose grant (or absence) is cached. Undefined otherwise (a JWT, a
   * cache miss, the event stream interrupted): then `check` must answer. The hot path of
   * GET /validate, without a promise per step.
   */
  function checkCached(request: GatewayRequest): GatewayDecision | undefined {
    const value = bearerValue(request);
    if (typeof value !== "string") return value;
    if (!value.startsWith(`${TOKEN_PREFIXES.accessToken}_`)) return undefined;
    const id = idOfShapedValue(value, TOKEN_PREFIXES.accessToken);
    if (!id) return unauthorized("the token is malformed or not issued here");
    const grant = cache.peek(id);
    // A value equal to one already verified needs no checksum; any other must pass it first.
    if (grant && verified.known(grant, value)) return decide(grant, value, request, true);
    if (!parseTokenValue(value, TOKEN_PREFIXES.accessToken)) {
      return unauthorized("the token is malformed or not issued here");
    }
    return grant === undefined ? undefined : decide(grant, value, request);
  }

  function decide(
    grant: TokenGrant | null,
    value: string,
    request: GatewayRequest,
    verifiedValue = false,
  ): GatewayDecision {
    if (!grant || !(verifiedValue || matches(grant, value))) {
      return unauthorized("the token is not known");
    }
    // Expiry first: the cache marks a token revoked on its EXPIRED event too (a tombstone).
    if (grant.endsAt !== null && grant.endsAt <= Date.now()) return unauthorized("the token is expired");
    if (grant.revoked) return unauthorized("the token is revoked");
    return authorize(grant, request, deps.config.gateway.clientDomainHeader);
  }

  return { check, checkCached, cache };
}

/** The bearer token's value, or the 401 for a missing or malformed Authorization header. */
function bearerValue(request: GatewayRequest): string | GatewayDecision {
  if (!request.authorization) return unauthorized("a bearer token is required", null);
  return (
    BEARER.exec(request.authorization)?.[1] ?? unauthorized("the Authorization header is not a bearer token")
  );
}

/**
 * The original URI's path must be one that every server reads the same way, since the gateway
 * passes the raw URI on and the API resolves it by its own rules: nginx's `proxy_pass` sends it
 * as the client wrote it, and an API may or may not resolve dot segments (also `%2e`), merge
 * slashes, decode `%2F` or `%5C` into separators, or drop `;parameters` from segments (Tomcat,
 * Jetty). `/other/v1/../../shop/v1/items` is `/shop/v1/items` to URL parsing, but an API that
 * routes by prefix serves it from `/other`; `//internal/shop/v1/items` is a path under the host
 * `internal` to URL parsing, and `/internal/shop/v1/items` to an API that merges slashes;
 * `/other/v1/..;/..;/shop/v1/items` is `/shop/v1/items` to Tomcat. So the check refuses, rather
 * than resolves, a path with a dot or empty segment in any of these readings, and matches the
 * others as they are (an encoded slash inside a segment, `group%2Fproject`, cannot leave the API).
 *
 * PLAIN_PATH: segments of path characters, not empty (a trailing slash aside) and not `.` or
 * `..` (with or without `;parameters`), without percent sign, backslash, query or fragment. The
 * hot path's URIs are all like it.
 */
const PLAIN_PATH = /^(?:(?:\/(?!\.\.?(?:[/;]|$))[A-Za-z0-9._~!$&'()*+,;=:@-]+)+\/?|\/)$/;

/**
 * Any other path: visible characters (raw UTF-8 reaches Node as Latin-1 characters), no
 * backslash, well-formed escapes.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are refused.
const PATH_TEXT = /^\/[^\x00-\x20\x7f\\]*$/;
const BAD_ESCAPE = /%(?![0-9a-f]{2})/i;

/**
 * A dot segment, also with `;parameters` (`.`, `..`, `%2e%2e`, `..;x`), or an empty one (`//`,
 * `/%2F`), where `/`, `%2F` and `%5C` all separate segments.
 */
const AMBIGUOUS = /(?:\/|%2f|%5c)(?:(?:\.|%2e){1,2}(?:[/;]|%2f|%5c|%3b|$)|\/|%2f|%5c|$)/i;

/**
 * The path of the original URI (query and fragment dropped), exactly as the client sent it; null
 * when it is not a path, or one that servers may read in different ways (see PLAIN_PATH).
 */
export function pathOf(uri: string): string | null {
  if (PLAIN_PATH.test(uri)) return uri;
  const end = uri.search(/[?#]/);
  const path = end === -1 ? uri : uri.slice(0, end);
  if (!PATH_TEXT.test(path) || BAD_ESCAPE.test(path)) return null;
  if (path === "/") return path;
  // A trailing slash ends the last segment; it does not make an empty one.
  const segments = path.endsWith("/") ? path.slice(0, -1) : path;
  return AMBIGUOUS.test(segments) ? null : path;
}

/**
 * The subscribed API whose `/context/version` prefix the path is under; the longest when several
 * are (the service refuses nested prefixes, but APIs created before that rule may have them).
 */
function apiOf(grant: TokenGrant, path: string): ApiGrant | undefined {
  let found: ApiGrant | undefined;
  for (const api of grant.apis) {
    if (
      (path === api.prefix || path.startsWith(`${api.prefix}/`)) &&
      api.prefix.length > (found?.prefix.length ?? -1)
    )
      found = api;
  }
  return found;
}

/** An encoded unreserved character (RFC 3986 §2.3), which means the character itself (§6.2.2.2). */
const UNRESERVED_ESCAPE = /%(4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2D|2E|5F|7E)/gi;
const ENCODED_SEPARATOR = /%2f|%5c/gi;
const SEGMENT_PARAMETERS = /;[^/]*/g;

/**
 * The ways APIs may read the path below their prefix, the first being the path as sent: with
 * encoded unreserved characters decoded (`/items/%73ecret` is `/items/secret` to every server),
 * then also with `%2F` and `%5C` decoded into separators (`/items/1%2Fsecret`, as some servers
 * read it) and with `;parameters` dropped from segments (`/items/secret;x`, as Tomcat reads it).
 */
export function resourceReadings(relative: string): string[] {
  if (!relative.includes("%") && !relative.includes(";")) return [relative];
  const sent = relative.replace(UNRESERVED_ESCAPE, (_escape, hex: string) =>
    String.fromCharCode(Number.parseInt(hex, 16)),
  );
  const separated = sent.replace(ENCODED_SEPARATOR, "/");
  return [
    ...new Set([
      sent,
      separated,
      sent.replace(SEGMENT_PARAMETERS, ""),
      separated.replace(SEGMENT_PARAMETERS, ""),
    ]),
  ];
}

/**
 * Null when the token may call the API's resource at this path; otherwise the 403. The
 * resources are tried most specific first (see byPrecedence), so a catch-all never hides a
 * stricter one, and the token must hold the scopes of the resource of every reading of the path
 * (see resourceReadings) that names one: the API may route it by any of them.
 */
function resourceRefusal(
  api: ApiGrant,
  method: string,
  relative: string,
  scopes: readonly string[],
): GatewayDecision | null {
  let found = false;
  for (const reading of resourceReadings(relative)) {
    const resource = api.resources.find((r) => r.method === method && r.pattern.test(reading));
    if (!resource) continue;
    found = true;
    if (resource.scopes.some((s) => !scopes.includes(s))) {
      return {
        status: 403,
        error: "insufficient_scope",
        description: "the token lacks a scope this resource requires",
        scope: resource.scopes.join(" "),
      };
    }
  }
  return found ? null : forbidden("the API defines no such resource");
}

/** The 200 of each grant, built once: its headers depend on the grant alone. */
const allowedDecisions = new WeakMap<TokenGrant, GatewayDecision>();

function authorize(grant: TokenGrant, request: GatewayRequest, domainHeader: string): GatewayDecision {
  const path = pathOf(request.uri);
  if (path === null) {
    return forbidden(
      "the original URI is not a plain path (no dot or empty segments, however encoded, and no backslashes)",
    );
  }
  const api = apiOf(grant, path);
  if (!api) return forbidden("the token's application is not subscribed to this API");
  if (!domainAllowed(grant.allowedDomains, request.domain)) {
    return forbidden(
      request.domain
        ? "the calling domain is not allowed for this key"
        : `the ${domainHeader} header is required for this key`,
    );
  }
  if (api.resources.length > 0) {
    const method = request.method.toUpperCase();
    const refused = resourceRefusal(api, method, path.slice(api.prefix.length) || "/", grant.scopes);
    if (refused) return refused;
  }
  let allowed = allowedDecisions.get(grant);
  if (!allowed) {
    allowed = allowedDecision(grant);
    allowedDecisions.set(grant, allowed);
  }
  return allowed;
}

function allowedDecision(grant: TokenGrant): GatewayDecision {
  return {
    status: 200,
    headers: {
      "x-auth-subject": grant.subject,
      "x-auth-client-id": grant.clientId,
      "x-auth-token-kind": grant.kind,
      "x-auth-scopes": grant.scopes.join(" "),
      ...(grant.applicationId ? { "x-auth-application-id": grant.applicationId } : {}),
      ...(grant.keyType ? { "x-auth-key-type": grant.keyType } : {}),
      ...(grant.username ? { "x-auth-username": grant.username } : {}),
    },
  };
}

/** What an allowed domain may name (see application-key.ts): any other header matches none. */
const HOST = new RegExp(`^${HOST_SOURCE}$`);

/** No list, an empty list or ALL: every domain. Otherwise the host (and port, if listed) must match. */
export function domainAllowed(allowed: readonly string[], header: string | undefined): boolean {
  if (allowed.length === 0 || allowed.includes("ALL")) return true;
  if (!header) return false;
  let host = header.trim().toLowerCase();
  if (host.includes("://")) {
    try {
      host = new URL(host).host;
    } catch {
      return false;
    }
  }
  // A host name (or address) with an optional port, nothing else: `evil.test/x.example.com` ends
  // with `.example.com` but names no subdomain of it.
  if (!HOST.test(host)) return false;
  const bare = host.replace(/:\d+$/, "");
  return allowed.some((entry) => {
    const withPort = /:\d+$/.test(entry);
    const candidate = withPort ? host : bare;
    if (entry.startsWith("*."))
      return candidate.endsWith(entry.slice(1)) && candidate.length > entry.length - 1;
    return candidate === entry;
  });
}

/**
 * The order resources are tried in, most specific first, so that the answer never depends on the
 * order they were stored in and a catch-all (`/items/{id}`, `/*`) never hides a stricter resource
 * (`/items/secret`): fewer `*` first, then more literal characters, then fewer `{name}` segments,
 * then the pattern's text.
 */
export function byPrecedence(a: string, b: string): number {
  const rank = (pattern: string) => {
    const wildcards = (pattern.match(/\*/g) ?? []).length;
    const params = (pattern.match(/\{[^}/]+\}/g) ?? []).length;
    const literal = pattern.replace(/\{[^}/]+\}|\*/g, "").length;
    return [wildcards, -literal, params] as const;
  };
  const [ra, rb] = [rank(a), rank(b)];
  for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return (ra[i] as number) - (rb[i] as number);
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A resource path pattern as a regular expression: `{name}` is one segment, `*` anything. */
export function resourcePattern(pattern: string): RegExp {
  const source = pattern
    .split(/(\{[^}/]+\}|\*)/)
    .map((part) =>
      part === "*" ? ".*" : /^\{[^}/]+\}$/.test(part) ? "[^/]+" : part.replace(/[.+?^$()|[\]\\]/g, "\\$&"),
    )
    .join("");
  return new RegExp(`^${source}/?$`);
}

/** Reads one token with its key, user and subscribed APIs (two statements). */
async function loadGrant(deps: Deps, id: string): Promise<TokenGrant | null> {
  const [row] = await deps.db
    .select({
      token: accessTokens,
      username: users.username,
      disabledAt: users.disabledAt,
      allowedDomains: applicationKeys.allowedDomains,
    })
    .from(accessTokens)
    .leftJoin(users, eq(users.id, accessTokens.userId))
    .leftJoin(applicationKeys, eq(applicationKeys.id, accessTokens.applicationKeyId))
    .where(eq(accessTokens.id, id));
  if (!row) return null;
  const { token } = row;
  const subscribed = token.applicationId
    ? await deps.db
        .select({
          apiId: apis.id,
          context: apis.context,
          version: apis.version,
          method: apiResources.method,
          pathPattern: apiResources.pathPattern,
          scopes: apiResources.scopes,
        })
        .from(subscriptions)
        .innerJoin(apis, eq(apis.id, subscriptions.apiId))
        .leftJoin(apiResources, eq(apiResources.apiId, apis.id))
        .where(eq(subscriptions.applicationId, token.applicationId))
    : [];
  const byApi = new Map<string, { prefix: string; resources: ApiGrant["resources"][number][] }>();
  const sorted = subscribed.toSorted((a, b) => byPrecedence(a.pathPattern ?? "", b.pathPattern ?? ""));
  for (const r of sorted) {
    const api = byApi.get(r.apiId) ?? { prefix: `${r.context}/${r.version}`, resources: [] };
    byApi.set(r.apiId, api);
    if (r.method && r.pathPattern)
      api.resources.push({
        method: r.method,
        pattern: resourcePattern(r.pathPattern),
        scopes: r.scopes ?? [],
      });
  }
  return {
    id: token.id,
    tokenHash: token.tokenHash,
    kind: token.kind,
    clientId: token.clientId,
    subject: token.userId ?? token.clientId,
    username: row.username,
    applicationId: token.applicationId,
    keyType: token.keyType,
    scopes: token.scopes,
    endsAt: endOf(token)?.getTime() ?? null,
    revoked: token.revokedAt !== null || row.disabledAt !== null,
    allowedDomains: row.allowedDomains ?? [],
    apis: [...byApi.values()],
  };
}
