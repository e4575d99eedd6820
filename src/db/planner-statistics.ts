import type { Database } from "./client.js";

/**
 * How often PGlite's tables are checked for changes (ms). A check holds PGlite for about 3 ms;
 * a table that just grew (tokens issued in bulk after a start) has statistics within this long.
 */
const CHECK_EVERY_MS = 10_000;
/** At least this long between two analyses of one table (ms): each blocks PGlite while it runs. */
const SPACING_MS = 10 * 60_000;
/** A table is analyzed again once this many rows changed, or this share of its rows if more. */
const MIN_CHANGES = 500;
const CHANGED_SHARE = 0.2;
/**
 * How long one check may keep analyzing (ms): each ANALYZE holds PGlite's one connection, so a
 * check analyzes due tables one after another only until this much time went by (the first one
 * whatever its size), and leaves the rest to the next check.
 */
const BUDGET_MS = 50;
/** A table never analyzed is analyzed once this large (8 pages): no plan depends on a smaller one. */
const MIN_BYTES = 65_536;

/**
 * PostgreSQL's autovacuum keeps the planner's statistics fresh; PGlite has no autovacuum, so
 * without this its planner never has any. It then guesses several rows for every token id (the
 * primary key is (id, user_store_domain)) and probes each id with a bitmap heap scan, which asks
 * for the table's size on every probe: a file-system call through Emscripten each time. With
 * statistics the planner knows an id names one row and reads it with a plain index scan (the
 * batched token read of introspection is about 15% cheaper).
 *
 * Tables whose rows changed enough since their last analysis (autovacuum's rule, with a larger
 * share: ANALYZE blocks PGlite's one connection, about 0.2 s for 200k rows) are analyzed, those
 * never analyzed first (their plans are the worst), then the most changed, as many per check as
 * fit in BUDGET_MS and each at most once per SPACING_MS. Empty tables are left
 * unanalyzed, as autovacuum leaves them: a table whose statistics say it is empty gets a
 * sequential scan, which asks for its size too.
 */
export function createPlannerStatistics(
  database: Database,
  now: () => number = Date.now,
  /** The clock of the analysis budget (tests stop it or run it fast). */
  elapsed: () => number = () => performance.now(),
) {
  const analyzedAt = new Map<string, number>();
  let checkedAt = Number.NEGATIVE_INFINITY;

  /**
   * The tables analyzed now (none on PostgreSQL, or between checks). `force`: check now and
   * analyze every table due, whatever the budget (tests).
   */
  async function refresh(options: { force?: boolean } = {}): Promise<string[]> {
    if (database.driver !== "pglite") return [];
    const at = now();
    if (!options.force && at - checkedAt < CHECK_EVERY_MS) return [];
    checkedAt = at;
    // Row counts reach the statistics views at most once a second: flush what is pending first.
    await database.raw("select pg_stat_force_next_flush()");
    const due = await database.raw<{ name: string }>(
      `select c.relname as name
       from pg_class c
       left join pg_stat_user_tables s on s.relid = c.oid
       where c.relkind = 'r' and c.relnamespace = 'public'::regnamespace
         and ((c.reltuples < 0 and pg_relation_size(c.oid) >= $1)
           or coalesce(s.n_mod_since_analyze, 0) >= greatest($2, $3 * greatest(c.reltuples, 0)))
       order by c.reltuples < 0 desc, coalesce(s.n_mod_since_analyze, 0) desc, c.relname`,
      [MIN_BYTES, MIN_CHANGES, CHANGED_SHARE],
    );
    const analyzed: string[] = [];
    const started = elapsed();
    for (const { name } of due) {
      if (!options.force && analyzed.length > 0 && elapsed() - started >= BUDGET_MS) break;
      if (at - (analyzedAt.get(name) ?? Number.NEGATIVE_INFINITY) < SPACING_MS) continue;
      // A name from pg_class, quoted as an identifier.
      await database.raw(`analyze "${name.replaceAll('"', '""')}"`);
      analyzedAt.set(name, at);
      analyzed.push(name);
    }
    return analyzed;
  }

  return { refresh };
}
