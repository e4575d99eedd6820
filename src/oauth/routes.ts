import type { FastifyError, FastifyInstance } from "fastify";
import type { Deps } from "../domain/deps.js";
import { type OAuthEndpoint, runEndpoint } from "./call.js";
import { OAuthError, toOAuthError } from "./errors.js";
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
  app.setErrorHandler((error: FastifyError, request, reply) => {
    // Fastify's own request errors (body too large, unknown media type, bad JSON) are malformed requests.
    const oauth =
      error instanceof OAuthError || !error.code?.startsWith("FST_")
        ? toOAuthError(error)
        : new OAuthError("invalid_request", "the request body is malformed or not a form");
    if (oauth.code === "server_error") request.log.error({ err: error }, "oauth endpoint failed");
    return reply.code(oauth.status).headers(oauth.headers).send(oauth.body());
  });
  for (const [path, endpoint] of OAUTH_ENDPOINTS) {
    app.post(path, async (request, reply) => {
      const call = { authorization: request.headers.authorization, ip: request.ip, form: formOf(request) };
      const wire = await runEndpoint(deps, endpoint, call);
      return reply
        .code(wire.status)
        .headers(wire.headers)
        .send(wire.body === "" ? undefined : wire.body);
    });
  }
  registerMetadata(app, deps);
}
