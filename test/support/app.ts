import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { GraphQLClient } from "graphql-request";
import { type App, buildApp } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createTestDatabase } from "./database.js";

export const ADMIN = { username: "admin", password: "admin-password-for-tests" } as const;

export interface TestApp {
  readonly app: App;
  readonly url: string;
  readonly graphqlUrl: string;
  /** Every log line the app wrote, as raw JSON text. */
  readonly logs: string[];
  /** SQL statements sent since the last `resetStatements()`. */
  readonly statements: string[];
  resetStatements(): void;
  /** A graphql-request client, authenticated when a token is given. */
  client(token?: string): GraphQLClient;
  /** Stops the server and, unless `keepData`, deletes its data. */
  stop(options?: { keepData?: boolean }): Promise<void>;
  readonly dataDir: string;
  readonly databaseUrl: string | undefined;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Reuse the data of an earlier app (restart tests). */
  dataDir?: string;
  databaseUrl?: string;
}

/** Boots the real server on port 0 over a fresh database (PGlite, or PostgreSQL with DATABASE_URL). */
export async function startTestApp(options: StartOptions = {}): Promise<TestApp> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "tm-test-")));
  const database = options.databaseUrl
    ? { url: options.databaseUrl, drop: async () => {} }
    : await createTestDatabase();
  const config = loadConfig({
    NODE_ENV: "test",
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "info",
    DATA_DIR: dataDir,
    DATABASE_URL: database.url,
    ADMIN_USERNAME: ADMIN.username,
    ADMIN_PASSWORD: ADMIN.password,
    ...options.env,
  });
  const logs: string[] = [];
  const statements: string[] = [];
  const logDestination = new Writable({
    write(chunk, _encoding, callback) {
      logs.push(String(chunk));
      callback();
    },
  });
  const app = buildApp({ config, logDestination, onQuery: (sql) => statements.push(sql) });
  const { url } = await app.start();
  const graphqlUrl = `${url}/graphql`;
  return {
    app,
    url,
    graphqlUrl,
    logs,
    statements,
    dataDir,
    databaseUrl: database.url,
    resetStatements: () => {
      statements.length = 0;
    },
    client: (token) =>
      new GraphQLClient(graphqlUrl, { headers: token ? { authorization: `Bearer ${token}` } : {} }),
    async stop({ keepData = false } = {}) {
      await app.stop();
      if (!keepData) {
        await database.drop();
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  };
}
