import type { OAuthEndpoint } from "./call.js";
import { authenticateRequestClient } from "./client-auth.js";
import { OAuthError } from "./errors.js";
import { required } from "./form.js";
import { GRANTS } from "./grants/index.js";

/** POST /token (RFC 6749 §3.2): authenticate the client, then dispatch to the grant by type. */
export const tokenEndpoint: OAuthEndpoint = async (deps, call) => {
  const grantType = required(call.form, "grant_type");
  const client = await authenticateRequestClient(deps, call);
  const grant = GRANTS.get(grantType);
  if (!grant) throw new OAuthError("unsupported_grant_type", `the ${grantType} grant is not supported`);
  return { status: 200, body: await grant.handle({ deps, call, client }) };
};
