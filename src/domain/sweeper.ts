import { and, inArray, isNull, lte, sql } from "drizzle-orm";
import { accessTokens } from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { clearExpiredRetryPairs } from "./refresh-token.js";
import { appendTokenEvents, tokenEventFor } from "./token-event.js";

const BATCH = 500;

/**
 * Revokes tokens whose regeneration grace period has ended, writing their REVOKED events.
 * Rows are claimed with FOR UPDATE SKIP LOCKED, so several instances never revoke one twice.
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

/** Runs the sweeper's jobs every `SWEEPER_INTERVAL_MS`, one round at a time; returns a stop function. */
export function startSweeper(deps: Deps): () => Promise<void> {
  let running: Promise<void> | undefined;
  const round = async () => {
    try {
      while ((await endGracePeriods(deps)) === BATCH) {}
      await clearExpiredRetryPairs(deps);
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
