import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Deps } from "../domain/deps.js";
import { createGatewayCheck, type GatewayDecision, type GatewayRequest } from "../domain/gateway.js";

const REALM = 'Bearer realm="token-manager"';
const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

/** What a decision answers: status, headers and (for refusals) a JSON body. */
interface DecisionResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

/**
 * GET /validate for nginx `auth_request` (original method and URI in X-Original-Method and
 * X-Original-URI) and Envoy `ext_authz` (any method, original path after /validate).
 *
 * `answer` is the hot path, called by the HTTP server before Fastify: a token whose grant is
 * cached is answered right there, synchronously, without Fastify's routing, hooks and per-request
 * logger. Anything else (a cache miss, a JWT, a request Fastify must see) goes to the route below.
 */
export function createValidateEndpoint(deps: Deps) {
  const gateway = createGatewayCheck(deps);
  const header = deps.config.gateway.clientDomainHeader;
  // Counted in plain numbers, read at scrape time: counting stays an addition on the hot path.
  const counts = { cached: new Map<number, number>(), lookup: new Map<number, number>() };
  const count = (status: number, path: "cached" | "lookup") => {
    const byStatus = counts[path];
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  };
  deps.metrics.probes.gatewayChecks = () => counts;

  const inputOf = (url: string, method: string, h: IncomingMessage["headers"]): GatewayRequest => ({
    authorization: h.authorization,
    domain: one(h[header]),
    method: one(h["x-original-method"]) ?? (method === "HEAD" ? "GET" : method),
    uri:
      one(h["x-original-uri"]) ??
      one(h["x-envoy-original-path"]) ??
      (url.startsWith("/validate/") ? url.slice("/validate".length) : "/"),
  });

  /** True when the request was answered here; false: hand it to Fastify. Never throws. */
  function answer(request: IncomingMessage, response: ServerResponse): boolean {
    const { url, method } = request;
    if (url === undefined || method === undefined) return false;
    if (url !== "/validate" && !url.startsWith("/validate/")) return false;
    if (method !== "GET" && method !== "HEAD") return false;
    let decision: GatewayDecision | undefined;
    try {
      decision = gateway.checkCached(inputOf(url, method, request.headers));
    } catch {
      return false;
    }
    if (decision === undefined) return false;
    const { status, headers, body } = wireResponseOf(decision);
    count(status, "cached");
    response.writeHead(status, headers);
    response.end(method === "HEAD" ? undefined : body);
    return true;
  }

  // Not async: a cached token is answered in this very call, without a promise per request.
  const handler = (request: FastifyRequest, reply: FastifyReply) => {
    const input = inputOf(request.url, request.method, request.headers);
    const decision = gateway.checkCached(input);
    if (decision === undefined)
      return gateway.check(input).then((d) => {
        count(d.status, "lookup");
        send(reply, d);
      });
    count(decision.status, "cached");
    send(reply, decision);
    // A sync handler that has sent returns nothing (Fastify would try to send a returned value).
    return undefined;
  };

  function register(app: FastifyInstance) {
    // Per-request logs would cost more than the check itself on this hot path: warnings only.
    for (const url of ["/validate", "/validate/*"]) {
      app.route({ method: [...METHODS], url, logLevel: "warn", handler });
    }
  }

  return { gateway, answer, register };
}

const JSON_BODY = { "content-type": "application/json; charset=utf-8" };
const one = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

function send(reply: FastifyReply, decision: GatewayDecision) {
  const { status, headers, body } = wireResponseOf(decision);
  return reply.code(status).headers(headers).send(body);
}

/** Each grant's 200, built once (refusals are built per request: they are rarely repeated). */
const allowedResponses = new WeakMap<GatewayDecision, DecisionResponse>();

/** The response to write for a decision: status, headers (with type and length) and body. */
function wireResponseOf(decision: GatewayDecision): DecisionResponse {
  if (decision.status !== 200) return withBody(refusalOf(decision));
  let allowed = allowedResponses.get(decision);
  if (!allowed) {
    allowed = {
      status: 200,
      headers: { ...NO_STORE, ...decision.headers, "content-length": "0" },
    };
    allowedResponses.set(decision, allowed);
  }
  return allowed;
}

const withBody = ({
  status,
  headers,
  body,
}: {
  status: number;
  headers: Record<string, string>;
  body: string;
}) => ({
  status,
  headers: { ...headers, ...JSON_BODY, "content-length": String(Buffer.byteLength(body)) },
  body,
});

function refusalOf(decision: Exclude<GatewayDecision, { status: 200 }>) {
  if (decision.status === 401) {
    // RFC 6750 §3.1: no error code when the request carried no token at all.
    const challenge = decision.error
      ? `${REALM}, error="${decision.error}", error_description="${decision.description}"`
      : REALM;
    return {
      status: 401,
      headers: { ...NO_STORE, "www-authenticate": challenge },
      body: JSON.stringify({
        error: decision.error ?? "unauthorized",
        error_description: decision.description,
      }),
    };
  }
  const headers: Record<string, string> = { ...NO_STORE };
  if (decision.error === "insufficient_scope") {
    headers["www-authenticate"] = `${REALM}, error="insufficient_scope", scope="${decision.scope ?? ""}"`;
  }
  return {
    status: 403,
    headers,
    body: JSON.stringify({ error: decision.error, error_description: decision.description }),
  };
}

const NO_STORE = { "cache-control": "no-store" };
