/**
 * Benchmark child: our service, built with the same `buildApp()` as `npm start`, configured from
 * the environment the harness passes (DATA_DIR or DATABASE_URL, HOST=127.0.0.1, PORT=0,
 * LOG_LEVEL=warn). Speaks the harness IPC protocol: "ready" once listening, "counts" on request
 * (rows read through the app's own database connection), "stop" for a graceful stop.
 *
 * BENCH_SKIP_TOKEN_READS=1 (a reference of the gateway suite, diagnosis only): once started, the token
 * reader answers each access token id from memory after its first read, so that introspection
 * does everything but the database read. Such a server would not see a revocation.
 */
import { buildApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import type { ChildMessage } from "./children.js";

const send = (message: ChildMessage) => process.send?.(message);

let statements = 0;
const app = buildApp({
  config: loadConfig(),
  // Counting only (an increment): the report divides it by the requests served.
  onQuery: () => {
    statements += 1;
  },
});

let stopping: Promise<void> | undefined;
function stop(code: number): Promise<void> {
  stopping ??= (async () => {
    // Bounded: a stuck stop must not keep the benchmark (or a database) alive.
    setTimeout(() => process.exit(1), 15_000).unref();
    try {
      await app.stop();
    } finally {
      process.exit(code);
    }
  })();
  return stopping;
}

process.on("message", async (message: { type: string }) => {
  if (message.type === "stop") await stop(0);
  if (message.type === "counts") {
    try {
      const [row] = await app.deps.database.raw<{ tokens: number; events: number }>(
        `select (select count(*)::int from access_tokens) as tokens,
                (select count(*)::int from token_events where type = 'ISSUED') as events`,
      );
      send({
        type: "counts",
        accessTokens: Number(row?.tokens),
        issuedEvents: Number(row?.events),
        statements,
      });
    } catch (error) {
      send({ type: "error", message: error instanceof Error ? error.message : String(error) });
    }
  }
});
// The harness went away (crashed or was killed): do not outlive it.
process.on("disconnect", () => void stop(1));
process.on("SIGTERM", () => void stop(0));
process.on("SIGINT", () => void stop(0));

/** Each access token id read once, then answered from memory (BENCH_SKIP_TOKEN_READS). */
function skipTokenReads(): void {
  const reader = app.deps.reader;
  const read = reader.readAccessToken.bind(reader);
  const known = new Map<string, ReturnType<typeof read>>();
  reader.readAccessToken = (id) => {
    let rows = known.get(id);
    if (!rows) {
      rows = read(id);
      known.set(id, rows);
      rows.catch(() => known.delete(id));
    }
    return rows;
  };
}

try {
  const { url } = await app.start();
  if (process.env.BENCH_SKIP_TOKEN_READS === "1") skipTokenReads();
  send({ type: "ready", url });
} catch (error) {
  send({ type: "error", message: error instanceof Error ? error.message : String(error) });
  await stop(1);
}
