import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Deps } from "../domain/deps.js";
import { createGatewayCheck, type GatewayDecision } from "../domain/gateway.js";

const REALM = 'Bearer realm="token-manager"';

/**
 * GET /validate for nginx `auth_request` (original method and URI in X-Original-Method and
 * X-Original-URI) and Envoy `ext_authz` (any method, original path after /validate).
 */
export function registerValidateRoute(app: FastifyInstance, deps: Deps) {
  const gateway = createGatewayCheck(deps);
  const header = deps.config.gateway.clientDomainHeader;

  // Not async: a cached token is answered in this very call, without a promise per request.
  const handler = (request: FastifyRequest, reply: FastifyReply) => {
    const h = request.headers;
    const fromEnvoy = request.url.startsWith("/validate/") ? request.url.slice("/validate".length) : "/";
    const input = {
      authorization: h.authorization,
      domain: one(h[header]),
      method: one(h["x-original-method"]) ?? (request.method === "HEAD" ? "GET" : request.method),
      uri: one(h["x-original-uri"]) ?? one(h["x-envoy-original-path"]) ?? fromEnvoy,
    };
    const decision = gateway.checkCached(input);
    if (decision === undefined) return gateway.check(input).then((d) => send(reply, d));
    send(reply, decision);
    // A sync handler that has sent returns nothing (Fastify would try to send a returned value).
    return undefined;
  };
  // Per-request logs would cost more than the check itself on this hot path: warnings only.
  app.route({
    method: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    url: "/validate",
    logLevel: "warn",
    handler,
  });
  app.route({
    method: ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
    url: "/validate/*",
    logLevel: "warn",
    handler,
  });
  return gateway;
}

const one = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

function send(reply: FastifyReply, decision: GatewayDecision) {
  reply.header("cache-control", "no-store");
  if (decision.status === 200) return reply.code(200).headers(decision.headers).send();
  if (decision.status === 401) {
    // RFC 6750 §3.1: no error code when the request carried no token at all.
    const challenge = decision.error
      ? `${REALM}, error="${decision.error}", error_description="${decision.description}"`
      : REALM;
    return reply
      .code(401)
      .header("www-authenticate", challenge)
      .send({ error: decision.error ?? "unauthorized", error_description: decision.description });
  }
  if (decision.error === "insufficient_scope") {
    reply.header("www-authenticate", `${REALM}, error="insufficient_scope", scope="${decision.scope ?? ""}"`);
  }
  return reply.code(403).send({ error: decision.error, error_description: decision.description });
}
