import type { FastifyInstance } from "fastify";
import { GRANT_TYPES } from "../domain/application-key.js";
import type { Deps } from "../domain/deps.js";

const AUTH_METHODS = ["client_secret_basic", "client_secret_post"];

/** GET /.well-known/oauth-authorization-server (RFC 8414 §3), every URL based on ISSUER. */
export function registerMetadata(app: FastifyInstance, deps: Deps): void {
  const issuer = deps.config.issuer;
  const document = Object.freeze({
    issuer,
    token_endpoint: `${issuer}/token`,
    revocation_endpoint: `${issuer}/revoke`,
    introspection_endpoint: `${issuer}/introspect`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    grant_types_supported: GRANT_TYPES,
    // No authorization endpoint: only grants that go straight to the token endpoint.
    response_types_supported: [],
    token_endpoint_auth_methods_supported: AUTH_METHODS,
    revocation_endpoint_auth_methods_supported: AUTH_METHODS,
    introspection_endpoint_auth_methods_supported: AUTH_METHODS,
    service_documentation: `${issuer}/graphql`,
  });
  app.get("/.well-known/oauth-authorization-server", async (_request, reply) =>
    reply.header("cache-control", "public, max-age=3600").send(document),
  );
}
