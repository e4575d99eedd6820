import type { PGlite } from "@electric-sql/pglite";
import type { TestApp } from "./app.js";

/**
 * `count` access token rows of the PRIMARY user store domain, for no application, straight into
 * the table (tests of plans and of the sweeper at scale), with the given column values (SQL).
 */
export async function insertAccessTokens(
  t: TestApp,
  count: number,
  columns: Record<string, string>,
): Promise<void> {
  const names = Object.keys(columns);
  await t.app.deps.database.raw(
    `insert into access_tokens (id, user_store_domain, kind, format, client_id, scopes, token_hash, issued_at, ${names.join(", ")})
     select gen_random_uuid(), 'PRIMARY', 'APPLICATION', 'OPAQUE', 'bulk', '{}', md5(random()::text), now() - interval '2 hours',
       ${names.map((n) => columns[n]).join(", ")}
     from generate_series(1, $1::int)`,
    [count],
  );
}

/**
 * A statement's plan lines with its `$n` unbound, on PGlite: EXPLAIN (GENERIC_PLAN) needs
 * PostgreSQL 16 (the CI's PostgreSQL is 15), and a simple query (the extended protocol wants values).
 */
export async function genericPlan(t: TestApp, sql: string): Promise<string[]> {
  const client = (t.app.deps.db as unknown as { $client: PGlite }).$client;
  const [result] = await client.exec(`explain (generic_plan) ${sql}`);
  return (result?.rows ?? []).map((row) => String((row as Record<string, unknown>)["QUERY PLAN"]));
}
