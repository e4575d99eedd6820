import type { FastifyError, FastifyInstance, FastifyReply } from "fastify";
import type { Deps } from "../domain/deps.js";
import { type OAuthEndpoint, runEndpoint, type WireResponse, wireOfError } from "./call.js";
import { OAuthError } from "./errors.js";
import { formOf, registerFormParser } from "./form.js";
import { introspectionEndpoint } from "./introspection-endpoint.js";
import { registerMetadata } from "./metadata.js";
import { revocationEndpoint } from "./revocation-endpoint.js";
import { tokenEndpoint } from "./token-endpoint.js";

/** The form-posting endpoints, by path: Fastify's routes and the fast path (fast-path.ts) serve these. */
export const OAUTH_ENDPOINTS: ReadonlyMap<string, OAuthEndpoint> = new Map([
  ["/token", tokenEndpoint],
  ["/revoke", revocationEndpoint],
  ["/introspect", introspectionEndpoint],
]);

/**
 * The OAuth2 REST surface, in its own Fastify scope: its own form parser, `no-store` on every
 * response (RFC 6749 §5.1), and every failure as an RFC error body — never a stack trace.
 */
export async function oauthRoutes(app: FastifyInstance, deps: Deps): Promise<void> {
  registerFormParser(app);
  app.addHook("onRequest", async (_request, reply) => {
    reply.header("cache-control", "no-store").header("pragma", "no-cache");
  });
  app.setErrorHandler((error: FastifyError, _request, reply) =>
    sendWire(reply, wireOfError(deps, requestError(error, deps.config.limits.httpBody))),
  );
  for (const [path, endpoint] of OAUTH_ENDPOINTS) {
    app.post(path, async (request, reply) => {
      const call = { authorization: request.headers.authorization, ip: request.ip, form: formOf(request) };
      return sendWire(reply, await runEndpoint(deps, endpoint, call));
    });
  }
  registerMetadata(app, deps);
}

/**
 * Fastify's own request errors as the malformed requests they are: a body over the limit (413),
 * a body the client stopped sending (it may not be there to read the answer), an unknown media
 * type. None is a server error, nor logged as one.
 */
function requestError(error: FastifyError, limit: number): Error {
  if (error instanceof OAuthError) return error;
  if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
    return new OAuthError("invalid_request", `the request body is larger than ${limit} bytes`, 413);
  }
  if (error.code === "ECONNRESET" || error.code?.startsWith("FST_")) {
    return new OAuthError("invalid_request", "the request body is malformed or not a form");
  }
  return error;
}

/** Sends a response built by call.ts through Fastify (the fast path writes the same bytes itself). */
function sendWire(reply: FastifyReply, wire: WireResponse) {
  return reply
    .code(wire.status)
    .headers(wire.headers)
    .send(wire.body === "" ? undefined : wire.body);
}
