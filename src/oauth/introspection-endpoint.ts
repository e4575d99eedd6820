import { introspect } from "../domain/introspection.js";
import type { OAuthEndpoint } from "./call.js";
import { authenticateRequestClient } from "./client-auth.js";
import { required } from "./form.js";

/** POST /introspect (RFC 7662): callers authenticate as a client (§2.1). */
export const introspectionEndpoint: OAuthEndpoint = async (deps, call) => {
  await authenticateRequestClient(deps, call);
  return { status: 200, body: await introspect(deps, required(call.form, "token")) };
};
