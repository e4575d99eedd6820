import type { PGlite } from "@electric-sql/pglite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sweep } from "../../src/domain/sweeper.js";
import { startTestApp, type TestApp } from "../support/app.js";

/**
 * The sweeper runs every SWEEPER_INTERVAL_MS over tables that hold every live token: each of its
 * statements must read through an index, never the whole table. Checked on the plans of the very
 * statements one sweep sent, with tables large enough that a scan would show: EXPLAIN
 * (GENERIC_PLAN) plans a statement with its parameters unbound (PostgreSQL 16 and later: PGlite;
 * the CI's PostgreSQL 15 lacks it).
 */
const ROWS = 20_000;

const onPostgres = () => process.env.DATABASE_URL !== undefined;

let t: TestApp;

/**
 * The plan of a statement whose `$n` stay unbound: sent as a simple query (the extended protocol
 * would want a value for each), through the embedded PGlite the test app runs on.
 */
async function genericPlan(sql: string): Promise<string[]> {
  const client = (t.app.deps.db as unknown as { $client: PGlite }).$client;
  const [result] = await client.exec(`explain (generic_plan) ${sql}`);
  return (result?.rows ?? []).map((row) => String((row as Record<string, unknown>)["QUERY PLAN"]));
}

beforeAll(async () => {
  // The sweeper is driven by hand below.
  t = await startTestApp({ env: { SWEEPER_INTERVAL_MS: "3600000" } });
  const db = t.app.deps.database;
  // Live tokens and refresh tokens, as after a busy day: nothing for the sweeper to do.
  await db.raw(
    `insert into access_tokens (id, user_store_domain, kind, format, client_id, scopes, token_hash, issued_at, expires_at)
     select gen_random_uuid(), 'PRIMARY', 'APPLICATION', 'OPAQUE', 'plans', '{}', md5(i::text), now(), now() + interval '1 hour'
     from generate_series(1, $1::int) as i`,
    [ROWS],
  );
  const [admin] = await db.raw<{ id: string }>("select id from users limit 1");
  await db.raw(
    `with f as (
       insert into refresh_token_families (user_id, client_id, user_store_domain) values ($2::uuid, 'plans', 'PRIMARY') returning id
     )
     insert into refresh_tokens (id, family_id, access_token_id, token_hash, issued_at, expires_at)
     select gen_random_uuid(), f.id, gen_random_uuid(), md5(i::text), now(), now() + interval '1 day'
     from generate_series(1, $1::int) as i, f`,
    [ROWS, admin?.id],
  );
});
afterAll(async () => {
  await t.stop();
});

describe("sweeper statements", () => {
  it.skipIf(onPostgres())(
    "read their work lists through indexes, never a whole table (checked on PGlite: EXPLAIN GENERIC_PLAN needs PostgreSQL 16)",
    async () => {
      t.resetStatements();
      await sweep(t.app.deps);
      const statements = [...new Set(t.statements)];
      // expiry, expiring soon, grace periods, purges, retry pairs: each job sent at least one.
      expect(statements.length).toBeGreaterThanOrEqual(6);
      const scans: string[] = [];
      for (const sql of statements) {
        const lines = await genericPlan(sql);
        const whole = lines.filter((line) => /Seq Scan on (access_tokens|refresh_token)/.test(line));
        if (whole.length > 0) scans.push(`${sql}\n${lines.join("\n")}`);
      }
      expect(scans).toEqual([]);
    },
  );
});
