import type { FastifyInstance } from "fastify";
import type { Deps } from "../domain/deps.js";
import { authenticateRequestClient } from "./client-auth.js";
import { OAuthError } from "./errors.js";
import { formOf, required } from "./form.js";
import { GRANTS } from "./grants/index.js";

/** POST /token (RFC 6749 §3.2): authenticate the client, then dispatch to the grant by type. */
export function registerTokenEndpoint(app: FastifyInstance, deps: Deps): void {
  app.post("/token", async (request) => {
    const form = formOf(request);
    const grantType = required(form, "grant_type");
    const client = await authenticateRequestClient(deps, request, form);
    const grant = GRANTS.get(grantType);
    if (!grant) throw new OAuthError("unsupported_grant_type", `the ${grantType} grant is not supported`);
    return grant.handle({ deps, request, form, client });
  });
}
