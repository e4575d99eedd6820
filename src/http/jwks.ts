import type { FastifyInstance } from "fastify";
import type { Deps } from "../domain/deps.js";

/** RFC 7517 §8.5: the registered media type of a JWK Set. */
const JWK_SET_MEDIA_TYPE = "application/jwk-set+json";

/**
 * `GET /.well-known/jwks.json`: the public keys JWT access tokens (RFC 9068) are signed with,
 * including retired keys whose tokens may still be in use.
 */
export function registerJwksRoute(app: FastifyInstance, deps: Deps): void {
  app.get("/.well-known/jwks.json", async (_request, reply) => {
    const jwks = await deps.signer.jwks();
    // Short enough that verifiers see a rotation soon; they refetch on an unknown kid anyway.
    return reply
      .header("content-type", JWK_SET_MEDIA_TYPE)
      .header("cache-control", "public, max-age=60")
      .send(jwks);
  });
}
