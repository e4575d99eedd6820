import type { Tx } from "../db/client.js";
import type {
  AccessTokenRow,
  ApplicationKeyRow,
  ApplicationRow,
  TokenEventReason,
  UserRow,
} from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { mintRefreshToken, startRefreshFamily } from "./refresh-token.js";
import { effectiveValidity, expiryFor, type TokenSettings } from "./settings.js";
import { CONSOLE_CLIENT_ID, issueAccessToken } from "./token.js";

/** A user token pair: the values are shown once. */
export interface UserTokens {
  readonly accessToken: string;
  readonly refreshToken: string | null;
  readonly token: AccessTokenRow;
  readonly user: UserRow;
}

export interface IssueUserTokensInput {
  readonly user: UserRow;
  readonly settings: TokenSettings;
  /** The application key the tokens are issued to; none for the built-in console client. */
  readonly client?: { readonly app: ApplicationRow; readonly key: ApplicationKeyRow } | null;
  readonly scopes: readonly string[];
  readonly withRefreshToken: boolean;
  /** Continue this rotation family (refresh); otherwise a new one starts. */
  readonly familyId?: string;
  readonly reason: TokenEventReason | null;
  readonly event?: "ISSUED" | "REFRESHED";
}

/**
 * Issues a user access token (and a refresh token of a rotation family) in the user's user store
 * domain partition — for login (console client), the password grant and refresh rotation.
 */
export async function issueUserTokens(tx: Tx, deps: Deps, input: IssueUserTokensInput): Promise<UserTokens> {
  const { user, settings, client } = input;
  const clientId = client?.key.consumerKey ?? CONSOLE_CLIENT_ID;
  const jwt = client?.app.tokenFormat === "JWT";
  const issuedAt = new Date();
  const familyId = input.withRefreshToken
    ? (input.familyId ??
      (await startRefreshFamily(tx, {
        userId: user.id,
        clientId,
        userStoreDomain: user.userStoreDomain,
        applicationKeyId: client?.key.id ?? null,
        scopes: input.scopes,
      })))
    : null;
  const validity = effectiveValidity(settings, client?.key.validityPeriod ?? null, settings.userValidity, {
    jwt,
  });
  const { value, token } = await issueAccessToken(tx, deps, {
    kind: "USER",
    format: jwt ? "JWT" : "OPAQUE",
    userStoreDomain: user.userStoreDomain,
    clientId,
    scopes: input.scopes,
    issuedAt,
    expiresAt: expiryFor(validity, issuedAt),
    userId: user.id,
    applicationId: client?.app.id ?? null,
    applicationKeyId: client?.key.id ?? null,
    keyType: client?.key.keyType ?? null,
    refreshFamilyId: familyId,
    reason: input.reason,
    actorId: user.id,
    event: input.event ?? "ISSUED",
  });
  const refreshToken = familyId
    ? (
        await mintRefreshToken(tx, deps, {
          familyId,
          accessTokenId: token.id,
          issuedAt,
          expiresAt: expiryFor(settings.refreshValidity, issuedAt),
        })
      ).value
    : null;
  return { accessToken: value, refreshToken, token, user };
}
