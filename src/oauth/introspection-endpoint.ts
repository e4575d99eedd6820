import type { FastifyInstance } from "fastify";
import type { Deps } from "../domain/deps.js";
import { introspect } from "../domain/introspection.js";
import { authenticateRequestClient } from "./client-auth.js";
import { formOf, required } from "./form.js";

/** POST /introspect (RFC 7662): callers authenticate as a client (§2.1). */
export function registerIntrospectionEndpoint(app: FastifyInstance, deps: Deps): void {
  app.post("/introspect", async (request) => {
    const form = formOf(request);
    await authenticateRequestClient(deps, request, form);
    return introspect(deps, required(form, "token"));
  });
}
