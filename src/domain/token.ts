import { randomUUID } from "node:crypto";
import { and, eq, gt, isNull, or, type SQL, sql } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import {
  type AccessTokenRow,
  accessTokens,
  type KeyType,
  type NewTokenEvent,
  type TokenEventReason,
  type TokenFormat,
  type TokenKind,
  users,
} from "../db/schema/index.js";
import { storedForm } from "./at-rest.js";
import type { Deps } from "./deps.js";
import { appendTokenEvents, tokenEventFor } from "./token-event.js";
import { mintTokenValue, parseTokenValue, TOKEN_PREFIXES, verifyTokenValue } from "./token-value.js";
import type { Viewer } from "./viewer.js";

/** The client id of the built-in console client that `login` issues tokens to. */
export const CONSOLE_CLIENT_ID = "console";

export interface IssueAccessTokenInput {
  readonly kind: TokenKind;
  readonly format?: TokenFormat;
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
  readonly reason: TokenEventReason | null;
  readonly actorId?: string | null;
  /** ISSUED (default), or REFRESHED for a token minted by refresh rotation. */
  readonly event?: "ISSUED" | "REFRESHED";
}

/** A token ready to be stored: its value (shown once), its row and its event. */
export interface PreparedToken {
  readonly value: string;
  readonly token: AccessTokenRow;
  readonly event: NewTokenEvent;
}

/**
 * Mints an access token in memory — opaque (`tmat_…`) or an RFC 9068 JWT whose `jti` is the row
 * id — with the row that stores it unusably (see at-rest.ts) and its ISSUED (or REFRESHED) event.
 */
export async function prepareAccessToken(deps: Deps, input: IssueAccessTokenInput): Promise<PreparedToken> {
  const format = input.format ?? "OPAQUE";
  const { id, value } =
    format === "JWT" ? await mintJwt(deps, randomUUID(), input) : mintTokenValue(TOKEN_PREFIXES.accessToken);
  const token: AccessTokenRow = {
    id,
    kind: input.kind,
    format,
    userStoreDomain: input.userStoreDomain,
    clientId: input.clientId,
    scopes: [...input.scopes],
    userId: input.userId ?? null,
    applicationId: input.applicationId ?? null,
    applicationKeyId: input.applicationKeyId ?? null,
    keyType: input.keyType ?? null,
    refreshFamilyId: input.refreshFamilyId ?? null,
    ...storedForm(deps, value, `access-token:${id}`),
    issuedAt: input.issuedAt,
    expiresAt: input.expiresAt,
    revokedAt: null,
    revokeReason: null,
    revokeScheduledAt: null,
    expiringSoonNotifiedAt: null,
    expiredNotifiedAt: null,
  };
  const event = tokenEventFor(token, input.event ?? "ISSUED", input.reason, input.actorId ?? null);
  return { value, token, event };
}

/** Mints an access token and stores it with its event, in `tx`. */
export async function issueAccessToken(
  tx: Tx,
  deps: Deps,
  input: IssueAccessTokenInput,
): Promise<{ value: string; token: AccessTokenRow }> {
  const prepared = await prepareAccessToken(deps, input);
  await tx.insert(accessTokens).values(prepared.token);
  await appendTokenEvents(tx, [prepared.event]);
  return { value: prepared.value, token: prepared.token };
}

/** RFC 9068 §2.2 claims; `sub` is the user for user tokens and the client for application tokens. */
async function mintJwt(
  deps: Deps,
  id: string,
  input: IssueAccessTokenInput,
): Promise<{ id: string; value: string }> {
  if (!input.expiresAt) throw new Error("JWT access tokens must expire");
  const value = await deps.signer.signAccessToken({
    iss: deps.config.issuer,
    sub: input.userId ?? input.clientId,
    aud: deps.config.issuer,
    client_id: input.clientId,
    iat: Math.floor(input.issuedAt.getTime() / 1000),
    exp: Math.floor(input.expiresAt.getTime() / 1000),
    jti: id,
    ...(input.scopes.length > 0 ? { scope: input.scopes.join(" ") } : {}),
    ...(input.applicationId ? { application_id: input.applicationId } : {}),
    ...(input.keyType ? { key_type: input.keyType } : {}),
  });
  return { id, value };
}

/**
 * Finds the access token a presented value names, whatever its format, after checking it: the
 * opaque checksum and keyed hash, or the JWT signature. Null for anything unknown or forged.
 * It does not check expiry or revocation: callers decide what an inactive token means to them.
 * Call it outside a transaction: checking a JWT may read the signing keys (one PGlite connection).
 */
export async function findAccessToken(tx: Tx, deps: Deps, value: string): Promise<AccessTokenRow | null> {
  const id = await accessTokenIdOf(deps, value);
  if (!id) return null;
  const [row] = await tx.select().from(accessTokens).where(eq(accessTokens.id, id));
  return row && verifyTokenValue(deps.secrets.tokenHashKeys, value, row.tokenHash) ? row : null;
}

/**
 * The row id an access token value names, after checking what can be checked without the row:
 * the opaque shape and checksum, or the JWT signature (its `jti`). Null for anything else.
 */
export async function accessTokenIdOf(deps: Deps, value: string): Promise<string | null> {
  if (value.startsWith(`${TOKEN_PREFIXES.accessToken}_`)) {
    return parseTokenValue(value, TOKEN_PREFIXES.accessToken)?.id ?? null;
  }
  if (value.length >= 8192 || value.split(".").length !== 3) return null;
  const payload = await deps.signer.verifyAccessToken(value);
  return typeof payload?.jti === "string" && UUID.test(payload.jti) ? payload.jti : null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** SQL condition: the token is neither revoked (nor past a scheduled revocation) nor expired. */
export const isActive = () =>
  and(
    isNull(accessTokens.revokedAt),
    or(isNull(accessTokens.revokeScheduledAt), gt(accessTokens.revokeScheduledAt, sql`now()`)),
    or(isNull(accessTokens.expiresAt), gt(accessTokens.expiresAt, sql`now()`)),
  );

/** The same rule in memory, for a row already loaded. */
export function isTokenActive(
  token: Pick<AccessTokenRow, "revokedAt" | "revokeScheduledAt" | "expiresAt">,
  now = new Date(),
): boolean {
  if (token.revokedAt) return false;
  if (token.revokeScheduledAt && token.revokeScheduledAt <= now) return false;
  return !token.expiresAt || token.expiresAt > now;
}

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
  if (!verifyTokenValue(deps.secrets.tokenHashKeys, value, row.token.tokenHash)) return null;
  return {
    id: row.user.id,
    username: row.user.username,
    roles: row.user.roles,
    userStoreDomain: row.user.userStoreDomain,
    tokenId: row.token.id,
  };
}

/**
 * When a token stops being valid: the earlier of its expiry and its scheduled revocation (the end
 * of a regeneration grace period); null when it has neither.
 */
export function endOf(token: Pick<AccessTokenRow, "expiresAt" | "revokeScheduledAt">): Date | null {
  const { expiresAt, revokeScheduledAt } = token;
  if (!revokeScheduledAt) return expiresAt;
  return expiresAt && expiresAt < revokeScheduledAt ? expiresAt : revokeScheduledAt;
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
  /**
   * Collect the events here instead of appending them now, for a caller that locks more rows
   * first: appending takes the event-order lock, which must come last (see token-event.ts).
   */
  deferred?: NewTokenEvent[],
): Promise<AccessTokenRow[]> {
  const revoked = await tx
    .update(accessTokens)
    .set({ revokedAt: sql`now()`, revokeReason: reason })
    .where(and(isActive(), where))
    .returning();
  const events = revoked.map((t) => tokenEventFor(t, "REVOKED", reason, actorId));
  if (deferred) deferred.push(...events);
  else await appendTokenEvents(tx, events);
  return revoked;
}
