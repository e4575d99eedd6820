import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPlannerStatistics } from "../../src/db/planner-statistics.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { genericPlan, insertAccessTokens } from "../support/plans.js";

const onPostgres = () => process.env.DATABASE_URL !== undefined;

let t: TestApp;

beforeAll(async () => {
  // The sweeper (which runs the statistics job) stays out of the way: driven by hand below.
  t = await startTestApp({ env: { SWEEPER_INTERVAL_MS: "3600000" } });
});
afterAll(async () => {
  await t.stop();
});

/** `count` live access token rows of the PRIMARY user store domain. */
const insertTokens = (count: number) =>
  insertAccessTokens(t, count, { expires_at: "now() + interval '1 hour'" });

const analyzedTables = async () =>
  (
    await t.app.deps.database.raw<{ name: string }>(
      "select distinct tablename as name from pg_stats where schemaname = 'public' order by 1",
    )
  ).map((r) => r.name);

describe("planner statistics", () => {
  it.runIf(onPostgres())("are left to autovacuum on PostgreSQL", async () => {
    const statistics = createPlannerStatistics(t.app.deps.database);
    await insertTokens(2_000);
    expect(await statistics.refresh({ force: true })).toEqual([]);
  });

  describe.skipIf(onPostgres())("on PGlite (no autovacuum)", () => {
    /** A statement's plan, as one text. */
    const planOf = async (sql: string) => (await genericPlan(t, sql)).join("\n");

    it("analyze the tables that changed enough, each at most once per ten minutes, and never an empty one", async () => {
      let clock = 1_000_000;
      const statistics = createPlannerStatistics(t.app.deps.database, () => clock);
      await insertTokens(2_000);
      expect(await analyzedTables()).not.toContain("access_tokens_primary");
      // Without statistics the planner guesses several rows per id, and probes with a bitmap scan.
      expect(await planOf("select * from access_tokens where id = $1")).toMatch(
        /Bitmap Heap Scan on access_tokens_primary/,
      );

      const first = await statistics.refresh();
      expect(first).toContain("access_tokens_primary");
      // The empty partition keeps no statistics: statistics saying "empty" would plan a scan of it.
      expect(first).not.toContain("access_tokens_default");
      expect(await analyzedTables()).toContain("access_tokens_primary");
      expect(await analyzedTables()).not.toContain("access_tokens_default");

      // With statistics, an id is known to name one row: a plain index probe, no bitmap scan.
      const probe = await planOf("select * from access_tokens where id = $1");
      expect(probe).toMatch(/Index Scan using access_tokens_primary_pkey/);
      expect(probe).not.toMatch(/Bitmap/);

      // Changed again: not before the next check (10 s), nor within ten minutes of the last analysis.
      await insertTokens(2_000);
      clock += 1_000;
      expect(await statistics.refresh()).toEqual([]);
      clock += 60_000;
      expect(await statistics.refresh()).not.toContain("access_tokens_primary");
      clock += 10 * 60_000;
      expect(await statistics.refresh()).toContain("access_tokens_primary");
      // Nothing changed since: nothing to do.
      clock += 11 * 60_000;
      expect(await statistics.refresh()).toEqual([]);
    });

    it("analyze tables never analyzed first, and as many per check as fit in 50 ms", async () => {
      // access_tokens_primary has statistics (the test above) and changes by 3,000 rows; users,
      // never analyzed, by 2,000 (larger than 64 KB): users comes first all the same.
      await insertTokens(3_000);
      await t.app.deps.database.raw(
        `insert into users (username, password_hash)
         select 'bulk-' || g || '-' || md5(random()::text), md5(random()::text) from generate_series(1, 2000) g`,
      );
      let clock = 100_000_000;
      // Each ANALYZE "takes" 60 ms on this budget clock: one table per check.
      let spent = 0;
      const slowly = () => {
        spent += 60;
        return spent;
      };
      const slow = createPlannerStatistics(t.app.deps.database, () => clock, slowly);
      expect(await slow.refresh()).toEqual(["users"]);
      clock += 5_000;
      expect(await slow.refresh()).toEqual([]);
      clock += 5_000;
      expect(await slow.refresh()).toEqual(["access_tokens_primary"]);

      // With time to spare, one check analyzes every table due.
      await insertTokens(3_000);
      await t.app.deps.database.raw(
        `insert into users (username, password_hash)
         select 'more-' || g || '-' || md5(random()::text), md5(random()::text) from generate_series(1, 3000) g`,
      );
      const quick = createPlannerStatistics(
        t.app.deps.database,
        () => clock,
        () => 0,
      );
      expect((await quick.refresh()).sort()).toEqual(["access_tokens_primary", "users"]);
    });
  });
});
