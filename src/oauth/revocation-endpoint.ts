import { revokeForClient } from "../domain/introspection.js";
import type { OAuthEndpoint } from "./call.js";
import { authenticateRequestClient } from "./client-auth.js";
import { required } from "./form.js";

/** POST /revoke (RFC 7009). */
export const revocationEndpoint: OAuthEndpoint = async (deps, call) => {
  const client = await authenticateRequestClient(deps, call);
  // §2.1: token_type_hint is only a hint; the token's own prefix tells its type.
  await revokeForClient(deps, client, required(call.form, "token"));
  // §2.2: 200 whether or not the token was known (another client's token is refused, §2.1).
  return { status: 200 };
};
