import { mkdtemp, rm } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
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
  /**
   * Listen on a port picked beforehand and set ISSUER to the app's own URL, so that RFC 8414
   * clients (which compare the metadata's issuer with the URL they asked) accept it.
   */
  issuerIsUrl?: boolean;
}

/** A port free right now on 127.0.0.1 (the app binds it a moment later; EADDRINUSE is retried). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Boots the real server on port 0 over a fresh database (PGlite, or PostgreSQL with DATABASE_URL). */
export async function startTestApp(options: StartOptions = {}): Promise<TestApp> {
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), "tm-test-")));
  const database = options.databaseUrl
    ? { url: options.databaseUrl, drop: async () => {} }
    : await createTestDatabase();
  const logs: string[] = [];
  const statements: string[] = [];
  const logDestination = new Writable({
    write(chunk, _encoding, callback) {
      logs.push(String(chunk));
      callback();
    },
  });
  const listen = async (): Promise<{ app: App; url: string }> => {
    const port = options.issuerIsUrl ? await freePort() : 0;
    const config = loadConfig({
      NODE_ENV: "test",
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "info",
      DATA_DIR: dataDir,
      DATABASE_URL: database.url,
      ADMIN_USERNAME: ADMIN.username,
      ADMIN_PASSWORD: ADMIN.password,
      ...(options.issuerIsUrl ? { ISSUER: `http://127.0.0.1:${port}` } : {}),
      ...options.env,
    });
    const app = buildApp({ config, logDestination, onQuery: (sql) => statements.push(sql) });
    try {
      return { app, url: (await app.start()).url };
    } catch (error) {
      await app.stop();
      throw error;
    }
  };
  let started: { app: App; url: string } | undefined;
  for (let attempt = 1; !started; attempt++) {
    try {
      started = await listen();
    } catch (error) {
      // Another process took the port between freePort() and listen(): pick another one.
      if (!options.issuerIsUrl || attempt >= 5 || (error as NodeJS.ErrnoException).code !== "EADDRINUSE") {
        // An app that never started (a refused setting, a failed migration) leaves no database.
        await database.drop();
        throw error;
      }
    }
  }
  const { app, url } = started;
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

/**
 * Resolves once the app has sent a statement matching `pattern` (since the last
 * `resetStatements()`): lets a test act between two steps of a request in flight.
 */
export async function statementSent(t: TestApp, pattern: RegExp, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!t.statements.some((statement) => pattern.test(statement))) {
    if (Date.now() > deadline) throw new Error(`no statement matching ${pattern} was sent`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** The password check's read of the user, by username (verifyUserCredentials). */
export const USER_BY_NAME = /lower\("users"\."username"\)/;
