import { type AuthenticatedClient, authenticateClient } from "../domain/application-key.js";
import type { Deps } from "../domain/deps.js";
import type { OAuthCall } from "./call.js";
import { invalidClient, OAuthError } from "./errors.js";
import { decodeComponent, optional } from "./form.js";

/** RFC 6749 §2.3.1: client_secret_basic, whose parts are form-urlencoded before base64. */
function basicCredentials(header: string): { clientId: string; secret: string } | null {
  // RFC 7235 §2.1: the scheme is case-insensitive, then one or more spaces.
  const match = /^Basic +([A-Za-z0-9+/]+=*)$/i.exec(header.trim());
  if (!match?.[1]) return null;
  const decoded = Buffer.from(match[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  try {
    return {
      clientId: decodeComponent(decoded.slice(0, colon)),
      secret: decodeComponent(decoded.slice(colon + 1)),
    };
  } catch {
    return null;
  }
}

/**
 * Authenticates the calling client by HTTP Basic or by client_id/client_secret in the body
 * (exactly one method, §2.3), with failures rate-limited per client id from a source address and
 * per source address.
 */
export async function authenticateRequestClient(deps: Deps, call: OAuthCall): Promise<AuthenticatedClient> {
  const { form } = call;
  const header = call.authorization;
  const postId = optional(form, "client_id");
  const postSecret = optional(form, "client_secret");
  // The scheme alone ("Basic", credentials missing) is still an attempt at Basic: it gets the challenge.
  const usedBasic = header !== undefined && /^basic(\s|$)/i.test(header);
  // A client_id alone beside Basic is no second method (RFC 6749 §3.2.1 lets clients send it).
  if (usedBasic && postSecret !== undefined) {
    throw new OAuthError("invalid_request", "use only one client authentication method");
  }
  const credentials = usedBasic
    ? basicCredentials(header)
    : postId !== undefined && postSecret !== undefined
      ? { clientId: postId, secret: postSecret }
      : null;
  if (!credentials || credentials.clientId.length > 256 || credentials.secret.length > 512) {
    throw invalidClient(usedBasic);
  }
  if (usedBasic && postId !== undefined && postId !== credentials.clientId) {
    throw new OAuthError(
      "invalid_request",
      "the client_id parameter names another client than the Basic credentials",
    );
  }
  // Counted per client id *and source*: a consumer secret is a minted 256-bit value that no
  // number of guesses finds, so a lock on the client id alone would protect nothing and would let
  // anyone who knows an id (ids travel in logs and gateway configurations) lock its client out
  // everywhere with a few bad requests. The per-source limit still stops a guessing source.
  const principal = `client:${credentials.clientId}@${call.ip}`;
  await deps.limiter.check(principal, call.ip);
  const client = await authenticateClient(deps, credentials.clientId, credentials.secret);
  if (!client) {
    await deps.limiter.fail(principal, call.ip);
    throw invalidClient(usedBasic);
  }
  return client;
}
