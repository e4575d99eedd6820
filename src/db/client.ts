import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { PGlite, parse, protocol } from "@electric-sql/pglite";
import type { Logger as DrizzleLogger } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import * as schema from "./schema/index.js";

export type Schema = typeof schema;
/** The drizzle database, whichever driver is underneath. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
/** A transaction or the database itself: domain functions accept either. */
export type Tx = Parameters<Parameters<Db["transaction"]>[0]>[0] | Db;

export interface Database {
  readonly db: Db;
  readonly driver: "pglite" | "postgres";
  /**
   * True when every listener lives in this process (PGlite): a statement may announce its rows
   * itself (`PreparedOptions.announce`) instead of NOTIFYing them.
   */
  readonly announcesInProcess: boolean;
  /** Runs a raw SQL text and returns its rows (health checks, partitions, advisory locks). */
  raw<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /**
   * Like `raw`, for a statement run very often with a fixed text: prepared once per connection.
   * Not counted by `onQuery` (it bypasses drizzle); callers report it themselves.
   */
  prepared<T = Record<string, unknown>>(
    text: string,
    params: unknown[],
    options?: PreparedOptions,
  ): Promise<T[]>;
  /**
   * LISTEN on a channel: `onNotify` gets each committed NOTIFY payload; `onListen` runs whenever
   * the listening connection is (re)established. Returns the function that stops listening.
   */
  listen(
    channel: string,
    onNotify: (payload: string) => void,
    onListen?: () => void,
  ): Promise<() => Promise<void>>;
  /**
   * NOTIFY outside any transaction, at once: on PostgreSQL on a connection of its own, so that a
   * heartbeat is not queued behind the pool's statements (the event bus times its beats).
   */
  notify(channel: string, payload: string): Promise<void>;
  /** Closes every connection; closing again does nothing. */
  close(): Promise<void>;
}

export interface PreparedOptions {
  /**
   * PostgreSQL only: run on the one connection kept for the token reader (see openPostgres).
   * PGlite has one connection anyway.
   */
  readonly reader?: boolean;
  /**
   * PGlite only (`announcesInProcess`): each returned row's `notice` column is handed to this
   * channel's listeners, in row order, inside the statement's lock, right after it committed:
   * what a NOTIFY from the statement would deliver, without PostgreSQL's notification queue.
   * No other statement's notifications can come in between, so commit order is kept.
   */
  readonly announce?: string;
}

export interface OpenDatabaseOptions {
  databaseUrl: string | undefined;
  dataDir: string;
  /** Called once per SQL statement sent through drizzle (statement counting in tests, tracing). */
  onQuery?: ((sql: string) => void) | undefined;
}

const migrationsFolder = fileURLToPath(new URL("../../drizzle", import.meta.url));
// Any constant: serialises migrations when several instances start on one PostgreSQL.
const MIGRATION_LOCK = 7_301_842_019;

/** Opens the database (postgres.js when a URL is given, embedded PGlite otherwise) and migrates it. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  const logger: DrizzleLogger | undefined = options.onQuery
    ? { logQuery: (query) => options.onQuery?.(query) }
    : undefined;
  return options.databaseUrl
    ? openPostgres(options.databaseUrl, logger)
    : openPglite(options.dataDir, logger);
}

async function openPglite(dataDir: string, logger: DrizzleLogger | undefined): Promise<Database> {
  const inMemory = dataDir.startsWith("memory://");
  const dir = inMemory ? dataDir : `${dataDir.replace(/\/+$/, "")}/pglite`;
  if (!inMemory) await mkdir(dir, { recursive: true });
  const client = await PGlite.create(dir);
  const db = drizzlePglite({ client, schema, logger }) as unknown as Db;
  await migratePglite(db as never, { migrationsFolder });
  const listeners = new Map<string, Set<(payload: string) => void>>();
  return {
    db,
    driver: "pglite",
    announcesInProcess: true,
    raw: async <T>(text: string, params?: unknown[]) => (await client.query<T>(text, params)).rows,
    prepared: preparedOn(client, listeners),
    notify: async (channel, payload) => {
      await client.query("select pg_notify($1, $2)", [channel, payload]);
    },
    listen: async (channel, onNotify, onListen) => {
      const stop = await client.listen(channel, onNotify);
      const local = listeners.get(channel) ?? new Set();
      listeners.set(channel, local.add(onNotify));
      onListen?.();
      return async () => {
        local.delete(onNotify);
        await stop();
      };
    },
    close: async () => {
      if (!client.closed) await client.close();
    },
  };
}

/**
 * PGlite's `query` parses, plans and describes its text on every call (six protocol round trips
 * into the WebAssembly backend). A fixed text is worth a named prepared statement instead: parsed
 * and described once, then each call is one Bind/Execute/Sync exchange, and PostgreSQL's plan
 * cache spares the planning too. Same locks as `query`, so never inside an open transaction.
 */
function preparedOn(client: PGlite, listeners: ReadonlyMap<string, ReadonlySet<(payload: string) => void>>) {
  type BackendMessage = Awaited<ReturnType<PGlite["execProtocol"]>>["messages"][number];
  const statements = new Map<string, { name: string; paramTypes: number[]; rows: BackendMessage[] }>();
  const exchange = async (messages: Uint8Array[], syncToFs = true) =>
    (await client.execProtocol(Buffer.concat([...messages, protocol.serialize.sync()]), { syncToFs }))
      .messages;
  return <T>(text: string, params: unknown[], options?: PreparedOptions): Promise<T[]> =>
    client._runExclusiveTransaction(() =>
      client._runExclusiveQuery(async () => {
        let statement = statements.get(text);
        if (!statement) {
          const name = `tm_${statements.size + 1}`;
          const described = await exchange(
            [protocol.serialize.parse({ name, text }), protocol.serialize.describe({ type: "S", name })],
            false,
          );
          const types = described.find((m) => m.name === "parameterDescription") as
            | { dataTypeIDs: number[] }
            | undefined;
          // The row description, if the statement returns rows: the results are parsed with it.
          const rows = described.filter((m) => m.name === "rowDescription");
          statement = { name, paramTypes: types?.dataTypeIDs ?? [], rows };
          statements.set(text, statement);
        }
        const { paramTypes } = statement;
        const values = params.map((value, i) => {
          if (value == null) return null;
          const serialize = client.serializers[paramTypes[i] as number];
          return serialize ? serialize(value) : String(value);
        });
        const messages = await exchange([
          protocol.serialize.bind({ statement: statement.name, values: values as string[] }),
          protocol.serialize.execute({}),
        ]);
        const rows = (parse.parseResults([...statement.rows, ...messages], client.parsers)[0]?.rows ??
          []) as T[];
        const announced = options?.announce === undefined ? undefined : listeners.get(options.announce);
        if (announced)
          for (const row of rows as { notice: string }[])
            for (const listener of announced) {
              try {
                listener(row.notice);
              } catch {
                // The statement committed: a listener's failure is its own (the bus logs its own).
              }
            }
        return rows;
      }),
    );
}

/** The application_name of the token reader's connection (pg_stat_activity shows it). */
export const READER_APPLICATION_NAME = "token-manager-reads";

async function openPostgres(url: string, logger: DrizzleLogger | undefined): Promise<Database> {
  const sql = postgres(url, {
    max: 10,
    onnotice: () => {},
    connection: { application_name: "token-manager" },
  });
  /**
   * The token reader's own connection: its batches, one after the other, go to one backend that
   * stays busy, where the pool would wake a different idle backend for each (a context switch on
   * either side per statement).
   */
  const reader = postgres(url, {
    max: 1,
    onnotice: () => {},
    connection: { application_name: READER_APPLICATION_NAME },
  });
  /** The event bus's heartbeats and sync pings (see `notify`). */
  const pulse = postgres(url, {
    max: 1,
    onnotice: () => {},
    connection: { application_name: "token-manager-pulse" },
  });
  await migrateWithLock(url);
  const db = drizzlePostgres({ client: sql, schema, logger }) as unknown as Db;
  return {
    db,
    driver: "postgres",
    raw: async <T>(text: string, params?: unknown[]) =>
      (await sql.unsafe(text, (params ?? []) as never[])) as unknown as T[],
    announcesInProcess: false,
    prepared: async <T>(text: string, params: unknown[], options?: PreparedOptions) =>
      (await (options?.reader ? reader : sql).unsafe(text, params as never[], {
        prepare: true,
      })) as unknown as T[],
    listen: async (channel, onNotify, onListen) => {
      // postgres.js keeps a dedicated connection for LISTEN and re-listens after reconnecting.
      const { unlisten } = await sql.listen(channel, onNotify, onListen);
      return unlisten;
    },
    notify: async (channel, payload) => {
      await pulse.notify(channel, payload);
    },
    close: async () => {
      await Promise.all([sql.end({ timeout: 5 }), reader.end({ timeout: 5 }), pulse.end({ timeout: 5 })]);
    },
  };
}

/** Migrations on one dedicated connection holding an advisory lock, so parallel starts do not race. */
async function migrateWithLock(url: string): Promise<void> {
  const single = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await single`select pg_advisory_lock(${MIGRATION_LOCK})`;
    await migratePostgres(drizzlePostgres({ client: single }), { migrationsFolder });
    await single`select pg_advisory_unlock(${MIGRATION_LOCK})`;
  } finally {
    await single.end({ timeout: 5 });
  }
}
