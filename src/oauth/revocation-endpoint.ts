import type { FastifyInstance } from "fastify";
import type { Deps } from "../domain/deps.js";
import { revokeForClient } from "../domain/introspection.js";
import { authenticateRequestClient } from "./client-auth.js";
import { formOf, required } from "./form.js";

/** POST /revoke (RFC 7009). */
export function registerRevocationEndpoint(app: FastifyInstance, deps: Deps): void {
  app.post("/revoke", async (request, reply) => {
    const form = formOf(request);
    const client = await authenticateRequestClient(deps, request, form);
    // §2.1: token_type_hint is only a hint; the token's own prefix tells its type.
    await revokeForClient(deps, client, required(form, "token"));
    // §2.2: 200 whether or not the token was known, so that nothing is revealed.
    return reply.code(200).send();
  });
}
