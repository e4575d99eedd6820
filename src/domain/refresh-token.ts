import { and, eq, isNull, lt, sql } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import {
  accessTokens,
  applicationKeys,
  applications,
  type RefreshTokenFamilyRow,
  refreshTokenFamilies,
  refreshTokens,
  type TokenEventReason,
  users,
} from "../db/schema/index.js";
import { storedForm } from "./at-rest.js";
import type { Deps } from "./deps.js";
import { open, seal } from "./encryption.js";
import { InvalidGrantError } from "./errors.js";
import { narrowScopes } from "./grant.js";
import { getTokenSettings } from "./settings.js";
import { revokeAccessTokens } from "./token.js";
import { mintTokenValue, parseTokenValue, TOKEN_PREFIXES, verifyTokenValue } from "./token-value.js";
import { issueUserTokens, type UserTokens } from "./user-token.js";

export interface StartFamilyInput {
  readonly userId: string;
  readonly clientId: string;
  readonly userStoreDomain: string;
  readonly applicationKeyId?: string | null;
  /** The scopes granted: every later refresh of the family is narrowed to them. */
  readonly scopes: readonly string[];
}

/** Starts a refresh token rotation family (one per login or password grant). */
export async function startRefreshFamily(tx: Tx, input: StartFamilyInput): Promise<string> {
  const [family] = await tx
    .insert(refreshTokenFamilies)
    .values({
      userId: input.userId,
      clientId: input.clientId,
      userStoreDomain: input.userStoreDomain,
      applicationKeyId: input.applicationKeyId ?? null,
      scopes: [...input.scopes],
    })
    .returning({ id: refreshTokenFamilies.id });
  return family!.id;
}

/** Mints a refresh token of `familyId` paired with `accessTokenId`; only its keyed hash is stored. */
export async function mintRefreshToken(
  tx: Tx,
  deps: Deps,
  input: { familyId: string; accessTokenId: string; issuedAt: Date; expiresAt: Date | null },
): Promise<{ id: string; value: string }> {
  const minted = mintTokenValue(TOKEN_PREFIXES.refreshToken);
  await tx.insert(refreshTokens).values({
    id: minted.id,
    familyId: input.familyId,
    accessTokenId: input.accessTokenId,
    ...storedForm(deps, minted.value, `refresh-token:${minted.id}`),
    issuedAt: input.issuedAt,
    expiresAt: input.expiresAt,
  });
  return minted;
}

const INVALID = "the refresh token is invalid, expired or revoked";

/** What a retry within the window gets back: the pair the first use produced. */
interface RetryPair {
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly accessTokenId: string;
}

/**
 * Refresh rotation with reuse detection (RFC 9700 §4.14.2). Each use of a refresh token rotates
 * it. Presenting a used one again within `REFRESH_RETRY_WINDOW` seconds, before its successor was
 * used, returns the same new pair (a lost response must not log the user out); any other reuse
 * revokes the whole family (reason REFRESH_REUSE_DETECTED) and fails.
 * Concurrent uses of one family serialise on the family row.
 */
export async function rotateRefreshToken(
  deps: Deps,
  input: { refreshToken: string; clientId: string; scope?: string | undefined },
): Promise<UserTokens & { refreshToken: string }> {
  const parsed = parseTokenValue(input.refreshToken, TOKEN_PREFIXES.refreshToken);
  if (!parsed) throw new InvalidGrantError(INVALID);
  await deps.signer.ready();
  const outcome = await deps.db.transaction(async (tx) => {
    const [first] = await tx
      .select({ familyId: refreshTokens.familyId, tokenHash: refreshTokens.tokenHash })
      .from(refreshTokens)
      .where(eq(refreshTokens.id, parsed.id));
    if (!first || !verifyTokenValue(deps.secrets.tokenHashKeys, input.refreshToken, first.tokenHash)) {
      throw new InvalidGrantError(INVALID);
    }
    const [family] = await tx
      .select()
      .from(refreshTokenFamilies)
      .where(eq(refreshTokenFamilies.id, first.familyId))
      .for("update");
    // Re-read under the family lock: a concurrent rotation may just have used this token.
    const [token] = await tx.select().from(refreshTokens).where(eq(refreshTokens.id, parsed.id));
    if (!family || !token) throw new InvalidGrantError(INVALID);
    // RFC 6749 §6: the refresh token must have been issued to the authenticated client.
    if (family.clientId !== input.clientId)
      throw new InvalidGrantError("the refresh token was issued to another client");
    if (family.revokedAt || token.revokedAt) throw new InvalidGrantError(INVALID);
    const now = new Date();
    if (token.usedAt) {
      const retry = await retryPair(tx, deps, token, now);
      if (retry) return { kind: "retry" as const, retry };
      await revokeFamily(tx, family, "REFRESH_REUSE_DETECTED", null);
      return { kind: "reuse" as const };
    }
    if (token.expiresAt && token.expiresAt <= now) throw new InvalidGrantError(INVALID);
    const [user] = await tx.select().from(users).where(eq(users.id, family.userId));
    if (!user || user.disabledAt) throw new InvalidGrantError(INVALID);
    const client = family.applicationKeyId ? await loadClient(tx, family.applicationKeyId) : null;
    if (family.applicationKeyId && !client) throw new InvalidGrantError(INVALID);
    // RFC 6749 §6: a narrower scope may be asked for, never a broader one than the owner granted,
    // and none the key no longer allows. Families started before their scopes were recorded fall
    // back to the scopes of the token the refresh token came with.
    const [previous] = family.scopes
      ? []
      : await tx
          .select({ scopes: accessTokens.scopes })
          .from(accessTokens)
          .where(eq(accessTokens.id, token.accessTokenId));
    const original = family.scopes ?? previous?.scopes ?? client?.key.scopes ?? [];
    const granted = client ? original.filter((s) => client.key.scopes.includes(s)) : original;
    const issued = await issueUserTokens(tx, deps, {
      user,
      settings: await getTokenSettings(tx),
      client,
      scopes: narrowScopes(input.scope, granted),
      withRefreshToken: true,
      familyId: family.id,
      reason: "ROTATED",
      event: "REFRESHED",
    });
    const pair: RetryPair = {
      accessToken: issued.accessToken,
      refreshToken: issued.refreshToken!,
      accessTokenId: issued.token.id,
    };
    const sealed = seal(deps.secrets.encryption, JSON.stringify(pair), `refresh-retry:${token.id}`);
    await tx
      .update(refreshTokens)
      .set({
        usedAt: now,
        replacedById: parseTokenValue(pair.refreshToken, TOKEN_PREFIXES.refreshToken)!.id,
        retryCiphertext: sealed.ciphertext,
        retryKeyId: sealed.keyId,
      })
      .where(eq(refreshTokens.id, token.id));
    return { kind: "rotated" as const, issued: { ...issued, refreshToken: pair.refreshToken } };
  });
  if (outcome.kind === "rotated") return outcome.issued;
  if (outcome.kind === "retry") return outcome.retry;
  // Committed above: the family stays revoked even though this request fails.
  await deps.bus.sync();
  throw new InvalidGrantError("the refresh token was already used: its token family has been revoked");
}

/** The pair a recent use produced, if this is a retry inside the window and the successor is unused. */
async function retryPair(
  tx: Tx,
  deps: Deps,
  token: typeof refreshTokens.$inferSelect,
  now: Date,
): Promise<(UserTokens & { refreshToken: string }) | null> {
  const window = deps.config.refreshRetryWindow * 1000;
  if (!token.usedAt || now.getTime() - token.usedAt.getTime() > window) return null;
  if (!token.replacedById || !token.retryCiphertext || !token.retryKeyId) return null;
  const [next] = await tx.select().from(refreshTokens).where(eq(refreshTokens.id, token.replacedById));
  if (!next || next.usedAt || next.revokedAt) return null;
  const plain = open(
    deps.secrets.encryption,
    { keyId: token.retryKeyId, ciphertext: token.retryCiphertext },
    `refresh-retry:${token.id}`,
  );
  if (!plain) return null;
  const pair = JSON.parse(plain) as RetryPair;
  const [row] = await tx
    .select({ token: accessTokens, user: users })
    .from(accessTokens)
    .innerJoin(users, eq(users.id, accessTokens.userId))
    .where(eq(accessTokens.id, pair.accessTokenId));
  if (!row) return null;
  return { accessToken: pair.accessToken, refreshToken: pair.refreshToken, token: row.token, user: row.user };
}

async function loadClient(tx: Tx, keyId: string) {
  const [row] = await tx
    .select({ key: applicationKeys, app: applications })
    .from(applicationKeys)
    .innerJoin(applications, eq(applications.id, applicationKeys.applicationId))
    .where(eq(applicationKeys.id, keyId));
  return row ?? null;
}

/** Revokes a family: its refresh tokens and every access token it produced (with REVOKED events). */
export async function revokeFamily(
  tx: Tx,
  family: Pick<RefreshTokenFamilyRow, "id">,
  reason: TokenEventReason,
  actorId: string | null,
): Promise<void> {
  await tx
    .update(refreshTokenFamilies)
    .set({ revokedAt: sql`now()`, revokeReason: reason })
    .where(and(eq(refreshTokenFamilies.id, family.id), isNull(refreshTokenFamilies.revokedAt)));
  await tx
    .update(refreshTokens)
    .set({ revokedAt: sql`now()`, retryCiphertext: null, retryKeyId: null })
    .where(and(eq(refreshTokens.familyId, family.id), isNull(refreshTokens.revokedAt)));
  await revokeAccessTokens(tx, eq(accessTokens.refreshFamilyId, family.id), reason, actorId);
}

/** Sweeper job: forgets retry pairs once their window has passed. */
export async function clearExpiredRetryPairs(deps: Deps): Promise<number> {
  const cleared = await deps.db
    .update(refreshTokens)
    .set({ retryCiphertext: null, retryKeyId: null })
    .where(
      and(
        sql`${refreshTokens.retryCiphertext} is not null`,
        lt(refreshTokens.usedAt, sql`now() - make_interval(secs => ${deps.config.refreshRetryWindow})`),
      ),
    )
    .returning({ id: refreshTokens.id });
  return cleared.length;
}
