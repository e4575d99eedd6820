import { and, eq, gt, isNull, or, type SQL, sql } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import {
  type AccessTokenRow,
  accessTokens,
  type KeyType,
  type TokenEventReason,
  type TokenKind,
  users,
} from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { appendTokenEvents, tokenEventFor } from "./token-event.js";
import {
  hashTokenValue,
  mintTokenValue,
  parseTokenValue,
  TOKEN_PREFIXES,
  verifyTokenValue,
} from "./token-value.js";
import type { Viewer } from "./viewer.js";

/** The client id of the built-in console client that `login` issues tokens to. */
export const CONSOLE_CLIENT_ID = "console";

export interface IssueAccessTokenInput {
  readonly kind: TokenKind;
  readonly userStoreDomain: string;
  readonly clientId: string;
  readonly scopes: readonly string[];
  readonly expiresAt: Date | null;
  readonly issuedAt: Date;
  readonly userId?: string | null;
  readonly applicationId?: string | null;
  readonly applicationKeyId?: string | null;
  readonly keyType?: KeyType | null;
  readonly refreshFamilyId?: string | null;
  readonly reason: TokenEventReason;
  readonly actorId?: string | null;
}

/** Mints an opaque access token, stores its keyed hash and appends its ISSUED event. */
export async function issueAccessToken(
  tx: Tx,
  deps: Deps,
  input: IssueAccessTokenInput,
): Promise<{ value: string; token: AccessTokenRow }> {
  const { id, value } = mintTokenValue(TOKEN_PREFIXES.accessToken);
  const [token] = await tx
    .insert(accessTokens)
    .values({
      id,
      kind: input.kind,
      userStoreDomain: input.userStoreDomain,
      clientId: input.clientId,
      scopes: [...input.scopes],
      userId: input.userId ?? null,
      applicationId: input.applicationId ?? null,
      applicationKeyId: input.applicationKeyId ?? null,
      keyType: input.keyType ?? null,
      refreshFamilyId: input.refreshFamilyId ?? null,
      tokenHash: hashTokenValue(deps.secrets.tokenHashKey, value),
      issuedAt: input.issuedAt,
      expiresAt: input.expiresAt,
    })
    .returning();
  await appendTokenEvents(tx, [tokenEventFor(token!, "ISSUED", input.reason, input.actorId ?? null)]);
  return { value, token: token! };
}

/** SQL condition: the token is neither revoked nor expired. */
export const isActive = () =>
  and(
    isNull(accessTokens.revokedAt),
    or(isNull(accessTokens.expiresAt), gt(accessTokens.expiresAt, sql`now()`)),
  );

/**
 * Resolves a console access token to its user. Returns null for anything that is not an active
 * console token of an enabled user; malformed values are rejected before any database read.
 */
export async function authenticateConsoleToken(deps: Deps, value: string): Promise<Viewer | null> {
  const parsed = parseTokenValue(value, TOKEN_PREFIXES.accessToken);
  if (!parsed) return null;
  const [row] = await deps.db
    .select({ token: accessTokens, user: users })
    .from(accessTokens)
    .innerJoin(users, eq(users.id, accessTokens.userId))
    .where(and(eq(accessTokens.id, parsed.id), eq(accessTokens.clientId, CONSOLE_CLIENT_ID), isActive()));
  if (!row || row.user.disabledAt) return null;
  if (!verifyTokenValue(deps.secrets.tokenHashKey, value, row.token.tokenHash)) return null;
  return {
    id: row.user.id,
    username: row.user.username,
    roles: row.user.roles,
    userStoreDomain: row.user.userStoreDomain,
    tokenId: row.token.id,
  };
}

/**
 * Revokes every active access token matching `where`, appending one REVOKED event per token in
 * the same transaction. Returns the revoked rows.
 */
export async function revokeAccessTokens(
  tx: Tx,
  where: SQL | undefined,
  reason: TokenEventReason,
  actorId: string | null,
): Promise<AccessTokenRow[]> {
  const revoked = await tx
    .update(accessTokens)
    .set({ revokedAt: sql`now()`, revokeReason: reason })
    .where(and(isActive(), where))
    .returning();
  await appendTokenEvents(
    tx,
    revoked.map((t) => tokenEventFor(t, "REVOKED", reason, actorId)),
  );
  return revoked;
}
