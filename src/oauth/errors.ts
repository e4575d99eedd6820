import { isDatabaseUnavailable } from "../db/connection-loss.js";
import {
  DomainError,
  InvalidCredentialsError,
  InvalidGrantError,
  InvalidScopeError,
  RateLimitedError,
  UnauthorizedClientError,
  ValidationError,
} from "../domain/errors.js";

/**
 * The OAuth error vocabulary, a closed union grouped by RFC section.
 * RFC 6749 §5.2 (token endpoint), RFC 7009 §2.2.1 (revocation), and the one we add for limits.
 */
export type OAuthErrorCode =
  // RFC 6749 §5.2
  | "invalid_request"
  | "invalid_client"
  | "invalid_grant"
  | "unauthorized_client"
  | "unsupported_grant_type"
  | "invalid_scope"
  // RFC 7009 §2.2.1
  | "unsupported_token_type"
  // RFC 6749 §4.1.2.1, reused for rate limits (with 429 and Retry-After)
  | "temporarily_unavailable"
  | "server_error";

const STATUS: Record<OAuthErrorCode, number> = {
  invalid_request: 400,
  invalid_client: 401,
  invalid_grant: 400,
  unauthorized_client: 400,
  unsupported_grant_type: 400,
  invalid_scope: 400,
  unsupported_token_type: 400,
  temporarily_unavailable: 429,
  server_error: 500,
};

/**
 * error_description as RFC 6749 §5.2 allows it (printable ASCII without `"` and `\`): a
 * description may quote what the client sent (a grant type, a scope, a parameter's name).
 */
const descriptionText = (text: string) =>
  text.replaceAll('"', "'").replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, "?");

/** An OAuth error: `description` is public (error_description); nothing else reaches the wire. */
export class OAuthError extends Error {
  readonly status: number;
  readonly headers: Record<string, string> = {};
  constructor(
    readonly code: OAuthErrorCode,
    readonly description: string,
    /** The HTTP status, when not the code's own (413 for a body over the limit). */
    status?: number,
  ) {
    super(description);
    this.status = status ?? STATUS[code];
  }

  body(): { error: OAuthErrorCode; error_description: string } {
    return { error: this.code, error_description: descriptionText(this.description) };
  }
}

/** invalid_client: 401, with a Basic challenge when the client tried Basic (RFC 6749 §5.2). */
export function invalidClient(usedBasic: boolean): OAuthError {
  const error = new OAuthError("invalid_client", "client authentication failed");
  if (usedBasic) error.headers["www-authenticate"] = 'Basic realm="token-manager", charset="UTF-8"';
  return error;
}

/** Maps domain errors to OAuth errors; anything unexpected is server_error (and the caller logs it). */
export function toOAuthError(error: unknown): OAuthError {
  if (error instanceof OAuthError) return error;
  if (error instanceof InvalidGrantError || error instanceof InvalidCredentialsError) {
    return new OAuthError("invalid_grant", error.message);
  }
  if (error instanceof InvalidScopeError) return new OAuthError("invalid_scope", error.message);
  if (error instanceof UnauthorizedClientError) return new OAuthError("unauthorized_client", error.message);
  if (error instanceof ValidationError) return new OAuthError("invalid_request", error.message);
  if (error instanceof RateLimitedError) {
    const limited = new OAuthError("temporarily_unavailable", error.message);
    limited.headers["retry-after"] = String(error.retryAfter);
    return limited;
  }
  if (error instanceof DomainError) return new OAuthError("invalid_request", error.message);
  // The database went away or cannot be reached (a restart or failover): nothing is wrong with
  // the request, and the driver connects again. 503 with Retry-After tells clients to try again.
  if (isDatabaseUnavailable(error)) {
    const unavailable = new OAuthError(
      "temporarily_unavailable",
      "the service cannot reach its database: retry shortly",
      503,
    );
    unavailable.headers["retry-after"] = "1";
    return unavailable;
  }
  return new OAuthError("server_error", "the server could not process the request");
}
