import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPlannerStatistics } from "../../src/db/planner-statistics.js";
import { sweep } from "../../src/domain/sweeper.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { genericPlan, insertAccessTokens } from "../support/plans.js";

/**
 * The sweeper at scale: it runs every SWEEPER_INTERVAL_MS over tables that hold every token, so
 * each of its statements must read through an index, never the whole table, and each work list
 * must be drained whatever its size.
 */
const ROWS = 20_000;
/** The sweeper's batch (sweeper.ts): a list longer than this takes several statements. */
const BATCH = 1_000;

const onPostgres = () => process.env.DATABASE_URL !== undefined;

let t: TestApp;

beforeAll(async () => {
  // The sweeper is driven by hand below; rows expired or revoked a second ago are purged.
  t = await startTestApp({ env: { SWEEPER_INTERVAL_MS: "3600000", TOKEN_RETENTION: "1" } });
});
afterAll(async () => {
  await t.stop();
});

const insertTokens = (count: number, columns: Record<string, string>) =>
  insertAccessTokens(t, count, columns);

const countTokens = async () =>
  Number(
    (await t.app.deps.database.raw<{ n: number }>("select count(*)::int as n from access_tokens"))[0]?.n,
  );

describe("sweeper purges", () => {
  it("drain each list past one batch, however long the other lists are", async () => {
    const before = await countTokens();
    // A full batch and more of revoked rows, and a shorter list of expired (announced) ones.
    await insertTokens(BATCH + 200, {
      expires_at: "now() + interval '1 hour'",
      revoked_at: "now() - interval '1 hour'",
    });
    await insertTokens(300, {
      expires_at: "now() - interval '1 hour'",
      expired_notified_at: "now() - interval '1 hour'",
    });
    const result = await sweep(t.app.deps);
    expect(result.purged).toBe(BATCH + 500);
    expect(await countTokens()).toBe(before);
  });
});

/**
 * The plans of the very statements one sweep sent, over tables large enough that a scan would
 * show. EXPLAIN (GENERIC_PLAN) plans a statement with its parameters unbound: PostgreSQL 16 and
 * later (PGlite); the CI's PostgreSQL 15 lacks it.
 */
describe.skipIf(onPostgres())("sweeper statements (PGlite: EXPLAIN GENERIC_PLAN needs PostgreSQL 16)", () => {
  beforeAll(async () => {
    // Live tokens and refresh tokens, as after a busy day: nothing for the sweeper to do.
    await insertTokens(ROWS, { expires_at: "now() + interval '1 hour'" });
    const db = t.app.deps.database;
    const [admin] = await db.raw<{ id: string }>("select id from users limit 1");
    await db.raw(
      `with f as (
         insert into refresh_token_families (user_id, client_id, user_store_domain) values ($2::uuid, 'sweeper', 'PRIMARY') returning id
       )
       insert into refresh_tokens (id, family_id, access_token_id, token_hash, issued_at, expires_at)
       select gen_random_uuid(), f.id, gen_random_uuid(), md5(i::text), now(), now() + interval '1 day'
       from generate_series(1, $1::int) as i, f`,
      [ROWS, admin?.id],
    );
  });

  /** The statements of one sweep whose plan reads a whole token table, with that plan. */
  async function wholeTableScans(): Promise<string[]> {
    t.resetStatements();
    await sweep(t.app.deps);
    const statements = [...new Set(t.statements)];
    // expiry, expiring soon, grace periods, the purge lists, retry pairs: each sent one at least.
    expect(statements.length).toBeGreaterThanOrEqual(6);
    const scans: string[] = [];
    for (const sql of statements) {
      const lines = await genericPlan(t, sql);
      const whole = lines.filter((line) => /Seq Scan on (access_tokens|refresh_token)/.test(line));
      if (whole.length > 0) scans.push(`${sql}\n${lines.join("\n")}`);
    }
    return scans;
  }

  it("read their work lists through indexes, never a whole table", async () => {
    expect(await wholeTableScans()).toEqual([]);
  });

  it("still do once the planner has statistics (planner-statistics.ts analyzes PGlite's tables)", async () => {
    const analyzed = await createPlannerStatistics(t.app.deps.database).refresh({ force: true });
    expect(analyzed).toEqual(expect.arrayContaining(["access_tokens_primary", "refresh_tokens"]));
    expect(await wholeTableScans()).toEqual([]);
  });
});
