import { and, gt, inArray, isNotNull, isNull, lt, lte, or, sql } from "drizzle-orm";
import { accessTokens, refreshTokenFamilies, refreshTokens } from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { clearExpiredRetryPairs } from "./refresh-token.js";
import { appendTokenEvents, tokenEventFor } from "./token-event.js";

const BATCH = 1000;

/** What one sweep did, for logs and metrics. */
export interface SweepResult {
  expired: number;
  expiringSoon: number;
  graceEnded: number;
  purged: number;
  /** Seconds the oldest expiry announced in this round was behind its expiry time. */
  lag: number;
}

/**
 * Announces tokens that have expired: one EXPIRED event each, exactly once even with several
 * instances, because rows are claimed with FOR UPDATE SKIP LOCKED and marked in the same
 * transaction as their events.
 */
export async function announceExpired(deps: Deps): Promise<{ count: number; lag: number }> {
  return deps.db.transaction(async (tx) => {
    const due = tx
      .select({ id: accessTokens.id })
      .from(accessTokens)
      .where(
        and(
          isNull(accessTokens.expiredNotifiedAt),
          isNull(accessTokens.revokedAt),
          lte(accessTokens.expiresAt, sql`now()`),
        ),
      )
      .orderBy(accessTokens.expiresAt)
      .limit(BATCH)
      .for("update", { skipLocked: true });
    const expired = await tx
      .update(accessTokens)
      .set({ expiredNotifiedAt: sql`now()` })
      .where(and(inArray(accessTokens.id, due), isNull(accessTokens.expiredNotifiedAt)))
      .returning();
    await appendTokenEvents(
      tx,
      expired.map((t) => tokenEventFor(t, "EXPIRED", null)),
    );
    const oldest = Math.min(...expired.map((t) => t.expiresAt?.getTime() ?? Date.now()));
    return { count: expired.length, lag: expired.length ? (Date.now() - oldest) / 1000 : 0 };
  });
}

/** EXPIRING_SOON warnings, EXPIRING_SOON_WARNING seconds ahead of expiry, once per token. */
export async function announceExpiringSoon(deps: Deps): Promise<number> {
  const warning = deps.config.expiringSoonWarning;
  if (warning === 0) return 0;
  return deps.db.transaction(async (tx) => {
    const due = tx
      .select({ id: accessTokens.id })
      .from(accessTokens)
      .where(
        and(
          isNull(accessTokens.expiringSoonNotifiedAt),
          isNull(accessTokens.revokedAt),
          gt(accessTokens.expiresAt, sql`now()`),
          lte(accessTokens.expiresAt, sql`now() + make_interval(secs => ${warning})`),
          // Only tokens that live longer than the warning: a short-lived token is not "soon" at birth.
          lte(accessTokens.issuedAt, sql`${accessTokens.expiresAt} - make_interval(secs => ${warning})`),
        ),
      )
      .limit(BATCH)
      .for("update", { skipLocked: true });
    const soon = await tx
      .update(accessTokens)
      .set({ expiringSoonNotifiedAt: sql`now()` })
      .where(and(inArray(accessTokens.id, due), isNull(accessTokens.expiringSoonNotifiedAt)))
      .returning();
    await appendTokenEvents(
      tx,
      soon.map((t) => tokenEventFor(t, "EXPIRING_SOON", null)),
    );
    return soon.length;
  });
}

/**
 * Revokes tokens whose regeneration grace period has ended, writing their REVOKED events.
 * Until this runs, such tokens already count as inactive (see `isActive`).
 */
export async function endGracePeriods(deps: Deps): Promise<number> {
  return deps.db.transaction(async (tx) => {
    const due = tx
      .select({ id: accessTokens.id })
      .from(accessTokens)
      .where(and(isNull(accessTokens.revokedAt), lte(accessTokens.revokeScheduledAt, sql`now()`)))
      .limit(BATCH)
      .for("update", { skipLocked: true });
    const revoked = await tx
      .update(accessTokens)
      .set({ revokedAt: accessTokens.revokeScheduledAt, revokeReason: "REGENERATED" })
      .where(and(inArray(accessTokens.id, due), isNull(accessTokens.revokedAt)))
      .returning();
    await appendTokenEvents(
      tx,
      revoked.map((t) => ({
        ...tokenEventFor(t, "REVOKED", "REGENERATED"),
        details: { gracePeriodEnded: true },
      })),
    );
    return revoked.length;
  });
}

/**
 * Deletes token rows expired or revoked longer than TOKEN_RETENTION ago (their events stay), so
 * the tables never grow without bound. Expired rows go only once announced.
 */
export async function purgeTokens(deps: Deps): Promise<number> {
  const cutoff = sql`now() - make_interval(secs => ${deps.config.tokenRetention})`;
  const purged = await deps.db
    .delete(accessTokens)
    .where(
      inArray(
        accessTokens.id,
        deps.db
          .select({ id: accessTokens.id })
          .from(accessTokens)
          .where(
            or(
              lt(accessTokens.revokedAt, cutoff),
              and(lt(accessTokens.expiresAt, cutoff), isNotNull(accessTokens.expiredNotifiedAt)),
            ),
          )
          .limit(BATCH),
      ),
    )
    .returning({ id: accessTokens.id });
  await deps.db
    .delete(refreshTokens)
    .where(
      or(
        lt(refreshTokens.revokedAt, cutoff),
        lt(refreshTokens.expiresAt, cutoff),
        lt(refreshTokens.usedAt, cutoff),
      ),
    );
  await deps.db.delete(refreshTokenFamilies).where(lt(refreshTokenFamilies.revokedAt, cutoff));
  return purged.length;
}

/** One sweep: every job, each in batches until its work is done. */
export async function sweep(deps: Deps): Promise<SweepResult> {
  const result: SweepResult = { expired: 0, expiringSoon: 0, graceEnded: 0, purged: 0, lag: 0 };
  for (;;) {
    const { count, lag } = await announceExpired(deps);
    result.expired += count;
    result.lag = Math.max(result.lag, lag);
    if (count < BATCH) break;
  }
  for (let n = BATCH; n === BATCH; result.expiringSoon += n) n = await announceExpiringSoon(deps);
  for (let n = BATCH; n === BATCH; result.graceEnded += n) n = await endGracePeriods(deps);
  for (let n = BATCH; n === BATCH; result.purged += n) n = await purgeTokens(deps);
  await clearExpiredRetryPairs(deps);
  return result;
}

/** Runs `sweep` every SWEEPER_INTERVAL_MS, one round at a time; returns a stop function. */
export function startSweeper(deps: Deps, onSweep?: (result: SweepResult) => void): () => Promise<void> {
  let running: Promise<void> | undefined;
  const round = async () => {
    try {
      const result = await sweep(deps);
      onSweep?.(result);
      if (result.purged > 0) deps.log.info({ purged: result.purged }, "purged expired and revoked tokens");
    } catch (error) {
      deps.log.error({ err: error }, "sweeper round failed");
    }
  };
  const timer = setInterval(() => {
    running ??= round().finally(() => {
      running = undefined;
    });
  }, deps.config.sweeperIntervalMs);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
