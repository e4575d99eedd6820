import { and, eq } from "drizzle-orm";
import { accessTokens, refreshTokenFamilies, refreshTokens, users } from "../db/schema/index.js";
import type { AuthenticatedClient } from "./application-key.js";
import type { Deps } from "./deps.js";
import { UnauthorizedClientError } from "./errors.js";
import { revokeFamily } from "./refresh-token.js";
import { accessTokenIdOf, endOf, findAccessToken, isTokenActive, revokeAccessTokens } from "./token.js";
import { thenSynced } from "./token-event.js";
import { parseTokenValue, TOKEN_PREFIXES, verifyTokenValue } from "./token-value.js";

/** RFC 7662 §2.2 response; inactive tokens say nothing else. */
export type Introspection =
  | { readonly active: false }
  | ({ readonly active: true; readonly token_type: string } & Readonly<Record<string, unknown>>);

const INACTIVE: Introspection = Object.freeze({ active: false });

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

/**
 * Introspects an access or refresh token. Why a token is inactive (unknown, expired, revoked,
 * its user disabled) is deliberately not said here: admins see that through GraphQL and events.
 */
export async function introspect(deps: Deps, value: string): Promise<Introspection> {
  return value.startsWith(`${TOKEN_PREFIXES.refreshToken}_`)
    ? introspectRefreshToken(deps, value)
    : introspectAccessToken(deps, value);
}

/**
 * The token's row, with its user and key, comes from the batched reader (one statement for the
 * introspections that arrived together, see TokenReader); the value is then checked against the
 * row's keyed hash.
 */
async function introspectAccessToken(deps: Deps, value: string): Promise<Introspection> {
  const id = await accessTokenIdOf(deps, value);
  if (!id) return INACTIVE;
  const rows = await deps.reader.readAccessToken(id);
  const token = rows.find((row) => verifyTokenValue(deps.secrets.tokenHashKeys, value, row.tokenHash));
  if (!token || !isTokenActive(token) || token.userDisabled) return INACTIVE;
  // Built member by member (optional ones only when present): the hottest answer of the service.
  const answer: Record<string, unknown> = {
    active: true,
    scope: token.scopes.join(" "),
    client_id: token.clientId,
  };
  if (token.username) answer.username = token.username;
  answer.token_type = "Bearer";
  // A token kept through a regeneration grace period ends with it (a caching resource server
  // would otherwise keep it past that).
  const endsAt = endOf(token);
  if (endsAt) answer.exp = seconds(endsAt);
  answer.iat = seconds(token.issuedAt);
  answer.sub = token.userId ?? token.clientId;
  answer.aud = deps.config.issuer;
  answer.iss = deps.config.issuer;
  answer.jti = token.id;
  // Extension members (RFC 7662 §2.2 allows them): what a gateway needs beyond the standard ones.
  answer.token_kind = token.kind;
  if (token.applicationId) answer.application_id = token.applicationId;
  if (token.keyType) answer.key_type = token.keyType;
  if (token.allowedDomains) answer.allowed_domains = token.allowedDomains;
  return answer as Introspection;
}

async function introspectRefreshToken(deps: Deps, value: string): Promise<Introspection> {
  const parsed = parseTokenValue(value, TOKEN_PREFIXES.refreshToken);
  if (!parsed) return INACTIVE;
  const token = await deps.reader.readRefreshToken(parsed.id);
  if (!token || !verifyTokenValue(deps.secrets.tokenHashKeys, value, token.tokenHash)) return INACTIVE;
  if (token.usedAt || token.revokedAt || token.familyRevokedAt || token.userDisabled) return INACTIVE;
  if (token.expiresAt && token.expiresAt <= new Date()) return INACTIVE;
  return {
    active: true,
    client_id: token.clientId,
    username: token.username,
    token_type: "refresh_token",
    ...(token.expiresAt ? { exp: seconds(token.expiresAt) } : {}),
    iat: seconds(token.issuedAt),
    sub: token.userId,
    iss: deps.config.issuer,
  };
}

const notTheClients = () => new UnauthorizedClientError("the token was issued to another client");

async function findRefreshToken(deps: Deps, value: string) {
  const parsed = parseTokenValue(value, TOKEN_PREFIXES.refreshToken);
  if (!parsed) return null;
  const [row] = await deps.db
    .select({
      token: refreshTokens,
      family: refreshTokenFamilies,
      username: users.username,
      disabledAt: users.disabledAt,
    })
    .from(refreshTokens)
    .innerJoin(refreshTokenFamilies, eq(refreshTokenFamilies.id, refreshTokens.familyId))
    .innerJoin(users, eq(users.id, refreshTokenFamilies.userId))
    .where(eq(refreshTokens.id, parsed.id));
  return row && verifyTokenValue(deps.secrets.tokenHashKeys, value, row.token.tokenHash) ? row : null;
}

/**
 * RFC 7009 revocation by the client the token was issued to. A refresh token takes its whole
 * family with it (and so the access tokens it produced). Unknown and forged values are left alone
 * without saying so (§2.2: the client could do nothing with the error); a real token of another
 * client is refused (§2.1), whatever its state, and left as it is — except an expired JWT, which
 * fails its signature check's `exp` first and so counts as unknown (200), as any expired JWT does.
 */
export async function revokeForClient(deps: Deps, client: AuthenticatedClient, value: string): Promise<void> {
  const clientId = client.key.consumerKey;
  if (value.startsWith(`${TOKEN_PREFIXES.refreshToken}_`)) {
    const row = await findRefreshToken(deps, value);
    if (!row) return;
    if (row.family.clientId !== clientId) throw notTheClients();
    await thenSynced(deps.bus, () =>
      deps.db.transaction((tx) => revokeFamily(tx, row.family, "CLIENT_REQUEST", null)),
    );
    return;
  }
  const token = await findAccessToken(deps.db, deps, value);
  if (!token) return;
  if (token.clientId !== clientId) throw notTheClients();
  if (!isTokenActive(token)) return;
  await thenSynced(deps.bus, () =>
    deps.db.transaction((tx) =>
      revokeAccessTokens(
        tx,
        and(eq(accessTokens.id, token.id), eq(accessTokens.userStoreDomain, token.userStoreDomain)),
        "CLIENT_REQUEST",
        null,
      ),
    ),
  );
}
