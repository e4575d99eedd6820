import { and, gt, gte, inArray, isNotNull, isNull, lt, lte, or, type SQL, sql } from "drizzle-orm";
import type { PgColumn, PgUpdateSetSource } from "drizzle-orm/pg-core";
import { createPlannerStatistics } from "../db/planner-statistics.js";
import {
  type AccessTokenRow,
  accessTokens,
  type NewTokenEvent,
  refreshTokenFamilies,
  refreshTokens,
} from "../db/schema/index.js";
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
 * The sweeper's one pattern: claim up to BATCH due rows with FOR UPDATE SKIP LOCKED (so several
 * instances never take the same row), change them, and append one event per row, all in one
 * transaction: each due token is handled exactly once. The claim and the change are two
 * statements, the change naming the claimed ids: as one (`where id in (claim) and due`), a planner
 * whose statistics lag a bulk of new rows (PGlite never analyses on its own) joined every due row
 * with every claimed one — 1,000 × the backlog comparisons, seconds per batch.
 */
async function claimAndAnnounce(
  deps: Deps,
  due: SQL,
  change: PgUpdateSetSource<typeof accessTokens>,
  eventFor: (token: AccessTokenRow) => NewTokenEvent,
  order?: SQL | PgColumn,
): Promise<AccessTokenRow[]> {
  return deps.db.transaction(async (tx) => {
    const claimed = await tx
      .select({ id: accessTokens.id })
      .from(accessTokens)
      .where(due)
      .orderBy(...(order ? [order] : []))
      .limit(BATCH)
      .for("update", { skipLocked: true });
    if (claimed.length === 0) return [];
    const rows = await tx
      .update(accessTokens)
      .set(change)
      .where(
        and(
          inArray(
            accessTokens.id,
            claimed.map((row) => row.id),
          ),
          due,
        ),
      )
      .returning();
    await appendTokenEvents(tx, rows.map(eventFor));
    return rows;
  });
}

/** Announces tokens that have expired: one EXPIRED event each, exactly once. */
export async function announceExpired(deps: Deps): Promise<{ count: number; lag: number }> {
  const expired = await claimAndAnnounce(
    deps,
    and(
      isNull(accessTokens.expiredNotifiedAt),
      isNull(accessTokens.revokedAt),
      lte(accessTokens.expiresAt, sql`now()`),
      // A grace period that ended first (or with it) ends the token as REVOKED (endGracePeriods).
      or(isNull(accessTokens.revokeScheduledAt), gt(accessTokens.revokeScheduledAt, accessTokens.expiresAt)),
    )!,
    // A grace period that would have ended later is moot now: the token leaves the grace-period
    // work list (its partial index), which endGracePeriods would otherwise read past every sweep.
    { expiredNotifiedAt: sql`now()`, revokeScheduledAt: null },
    (t) => tokenEventFor(t, "EXPIRED", null),
    accessTokens.expiresAt,
  );
  const oldest = Math.min(...expired.map((t) => t.expiresAt?.getTime() ?? Date.now()));
  return { count: expired.length, lag: expired.length ? (Date.now() - oldest) / 1000 : 0 };
}

/** EXPIRING_SOON warnings, EXPIRING_SOON_WARNING seconds ahead of expiry, once per token. */
export async function announceExpiringSoon(deps: Deps): Promise<number> {
  const warning = deps.config.expiringSoonWarning;
  if (warning === 0) return 0;
  const soon = await claimAndAnnounce(
    deps,
    and(
      isNull(accessTokens.expiringSoonNotifiedAt),
      isNull(accessTokens.revokedAt),
      gt(accessTokens.expiresAt, sql`now()`),
      lte(accessTokens.expiresAt, sql`now() + make_interval(secs => ${warning})`),
      // Only tokens that live longer than the warning: a short-lived token is not "soon" at birth.
      lte(accessTokens.issuedAt, sql`${accessTokens.expiresAt} - make_interval(secs => ${warning})`),
    )!,
    { expiringSoonNotifiedAt: sql`now()` },
    (t) => tokenEventFor(t, "EXPIRING_SOON", null),
  );
  return soon.length;
}

/**
 * Revokes tokens whose regeneration grace period has ended, writing their REVOKED events.
 * Until this runs, such tokens already count as inactive (see `isActive`). Each token gets one
 * end: whichever of its expiry and its grace period's end comes first (a tie is the revocation).
 */
export async function endGracePeriods(deps: Deps): Promise<number> {
  const revoked = await claimAndAnnounce(
    deps,
    and(
      isNull(accessTokens.revokedAt),
      lte(accessTokens.revokeScheduledAt, sql`now()`),
      // A token that expired before its grace period ended had its end: EXPIRED (announceExpired).
      or(isNull(accessTokens.expiresAt), gte(accessTokens.expiresAt, accessTokens.revokeScheduledAt)),
    )!,
    { revokedAt: sql`${accessTokens.revokeScheduledAt}`, revokeReason: "REGENERATED" },
    (t) => ({ ...tokenEventFor(t, "REVOKED", "REGENERATED"), details: { gracePeriodEnded: true } }),
    accessTokens.revokeScheduledAt,
  );
  return revoked.length;
}

/**
 * Deletes token rows expired or revoked longer than TOKEN_RETENTION ago (their events stay), so
 * the tables never grow without bound. Expired rows go only once announced. Each work list is
 * read in the order of its own index (see purgeRows) and drained in batches of its own; the
 * access tokens purged are counted.
 */
export async function purgeTokens(deps: Deps): Promise<number> {
  const cutoff = sql`now() - make_interval(secs => ${deps.config.tokenRetention})`;
  const drain = (table: PurgedTable, due: SQL, order: PgColumn) =>
    inBatches(() => purgeRows(deps, table, due, order));
  const a = accessTokens;
  const r = refreshTokens;
  const f = refreshTokenFamilies;
  const purged =
    (await drain(a, lt(a.revokedAt, cutoff), a.revokedAt)) +
    (await drain(a, and(lt(a.expiresAt, cutoff), isNotNull(a.expiredNotifiedAt))!, a.expiresAt));
  await drain(r, lt(r.revokedAt, cutoff), r.revokedAt);
  await drain(r, lt(r.expiresAt, cutoff), r.expiresAt);
  await drain(r, lt(r.usedAt, cutoff), r.usedAt);
  await drain(f, lt(f.revokedAt, cutoff), f.revokedAt);
  return purged;
}

type PurgedTable = typeof accessTokens | typeof refreshTokens | typeof refreshTokenFamilies;

/**
 * Deletes up to BATCH rows of one work list: their ids first, in the order of the column the list
 * is indexed on (with a limit, that plan needs no statistics, which PGlite never gathers), then
 * the rows by id. As one statement (`where id in (select …)`) the planner hashed the whole table
 * against the ids; as one condition over all the lists (`revoked or expired or used`) it read the
 * whole table on every sweep.
 */
async function purgeRows(deps: Deps, table: PurgedTable, due: SQL, order: PgColumn): Promise<number> {
  const claimed = await deps.db
    .select({ id: table.id })
    .from(table as typeof accessTokens)
    .where(due)
    .orderBy(order)
    .limit(BATCH);
  if (claimed.length === 0) return 0;
  const ids = claimed.map((row) => row.id);
  const deleted = await deps.db
    .delete(table as typeof accessTokens)
    .where(and(inArray(table.id, ids), due))
    .returning({ id: table.id });
  return deleted.length;
}

/**
 * Lets the event loop turn between the sweeper's statements: on embedded PGlite a chain of
 * statements runs without one (each answers synchronously), so a long sweep would otherwise hold
 * back every socket, the events it announced among them.
 */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Runs `job` until it does less than a full batch, letting the event loop turn after each. */
async function inBatches(job: () => Promise<number>): Promise<number> {
  let total = 0;
  for (let n = BATCH; n === BATCH; total += n) {
    n = await job();
    await nextTurn();
  }
  return total;
}

/** One sweep: every job, each in batches until its work is done. */
export async function sweep(deps: Deps): Promise<SweepResult> {
  const result: SweepResult = { expired: 0, expiringSoon: 0, graceEnded: 0, purged: 0, lag: 0 };
  for (;;) {
    const { count, lag } = await announceExpired(deps);
    result.expired += count;
    result.lag = Math.max(result.lag, lag);
    if (count < BATCH) break;
    await nextTurn();
  }
  result.expiringSoon = await inBatches(() => announceExpiringSoon(deps));
  result.graceEnded = await inBatches(() => endGracePeriods(deps));
  result.purged = await purgeTokens(deps);
  await clearExpiredRetryPairs(deps);
  return result;
}

/**
 * Runs `sweep` every SWEEPER_INTERVAL_MS, one round at a time, and after it keeps PGlite's
 * planner statistics fresh (see planner-statistics.ts); returns a stop function.
 */
export function startSweeper(deps: Deps, onSweep?: (result: SweepResult) => void): () => Promise<void> {
  let running: Promise<void> | undefined;
  const statistics = createPlannerStatistics(deps.database);
  const round = async () => {
    try {
      const result = await sweep(deps);
      onSweep?.(result);
      if (result.purged > 0) deps.log.info({ purged: result.purged }, "purged expired and revoked tokens");
    } catch (error) {
      deps.log.error({ err: error }, "sweeper round failed");
    }
    try {
      const analyzed = await statistics.refresh();
      if (analyzed.length > 0) deps.log.info({ tables: analyzed }, "analyzed changed tables (PGlite)");
    } catch (error) {
      deps.log.error({ err: error }, "planner statistics failed");
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
