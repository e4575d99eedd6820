import { randomBytes } from "node:crypto";
import postgres from "postgres";

/**
 * With DATABASE_URL set (the PostgreSQL run), every test app gets a fresh database of its own on
 * that server, dropped afterwards; without it, tests use PGlite in a temporary directory.
 */
export async function createTestDatabase(): Promise<{ url: string | undefined; drop: () => Promise<void> }> {
  const base = process.env.DATABASE_URL;
  if (!base) return { url: undefined, drop: async () => {} };
  const name = `tm_test_${randomBytes(6).toString("hex")}`;
  const admin = postgres(base, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const sql = postgres(base, { max: 1, onnotice: () => {} });
      await sql.unsafe(`drop database if exists ${name} with (force)`);
      await sql.end();
    },
  };
}

/**
 * Drops the database a restarted app used (an app started on an existing `databaseUrl` does not
 * own it, so its `stop()` leaves it); nothing to do on PGlite, whose data lives in `dataDir`.
 */
export async function dropDatabaseAt(url: string | undefined): Promise<void> {
  const base = process.env.DATABASE_URL;
  if (!base || !url) return;
  const name = new URL(url).pathname.slice(1);
  if (!/^tm_test_[0-9a-f]{12}$/.test(name)) throw new Error(`not a test database: ${name}`);
  const sql = postgres(base, { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop database if exists ${name} with (force)`);
  await sql.end();
}
