import type { Database } from "./client.js";

/** How often PGlite's tables are checked for changes (ms). */
const CHECK_EVERY_MS = 30_000;
/** At least this long between two analyses of one table (ms): each blocks PGlite while it runs. */
const SPACING_MS = 10 * 60_000;
/** A table is analyzed again once this many rows changed, or this share of its rows if more. */
const MIN_CHANGES = 500;
const CHANGED_SHARE = 0.2;
/** Tables analyzed per check: each blocks PGlite, so one at a time, 30 s apart. */
const TABLES_PER_CHECK = 1;
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
 * share: ANALYZE blocks PGlite's one connection, about 0.2 s for 200k rows) are analyzed, the
 * most changed first, one per check and each at most once per SPACING_MS. Empty tables are left
 * unanalyzed, as autovacuum leaves them: a table whose statistics say it is empty gets a
 * sequential scan, which asks for its size too.
 */
export function createPlannerStatistics(database: Database, now: () => number = Date.now) {
  const analyzedAt = new Map<string, number>();
  let checkedAt = Number.NEGATIVE_INFINITY;

  /**
   * The tables analyzed now (none on PostgreSQL, or between checks). `force`: check now and
   * analyze every table due, not just one (tests).
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
       order by coalesce(s.n_mod_since_analyze, 0) desc, c.relname`,
      [MIN_BYTES, MIN_CHANGES, CHANGED_SHARE],
    );
    const analyzed: string[] = [];
    for (const { name } of due) {
      if (!options.force && analyzed.length >= TABLES_PER_CHECK) break;
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
