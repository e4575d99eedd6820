import type { AuthenticatedClient, GrantType } from "../../domain/application-key.js";
import type { Deps } from "../../domain/deps.js";
import type { OAuthCall } from "../call.js";

/** RFC 6749 §5.1 successful response. */
export interface TokenResponse {
  readonly access_token: string;
  readonly token_type: "Bearer";
  /** Absent when the token never expires. */
  readonly expires_in?: number;
  readonly refresh_token?: string;
  readonly scope?: string;
}

export interface GrantRequest {
  readonly deps: Deps;
  readonly call: OAuthCall;
  readonly client: AuthenticatedClient;
}

/** One grant type: what the token endpoint dispatches to by `grant_type`. */
export interface Grant {
  readonly type: GrantType;
  handle(request: GrantRequest): Promise<TokenResponse>;
}

/** The §5.1 body for an issued access token (and refresh token). */
export function tokenResponse(
  token: { expiresAt: Date | null; scopes: readonly string[] },
  accessToken: string,
  refreshToken?: string | null,
): TokenResponse {
  return {
    access_token: accessToken,
    token_type: "Bearer",
    ...(token.expiresAt
      ? { expires_in: Math.max(0, Math.round((token.expiresAt.getTime() - Date.now()) / 1000)) }
      : {}),
    ...(refreshToken ? { refresh_token: refreshToken } : {}),
    ...(token.scopes.length > 0 ? { scope: token.scopes.join(" ") } : {}),
  };
}
