/**
 * Events benchmark child: our service, built with the same `buildApp()` as `npm start` and
 * configured from the environment the harness passes (as token-server.ts). Answers, over IPC
 * (events-ipc.ts): `sql` (a statement through the app's own database connection: the only way
 * in to a PGlite database), `subscribers` (live subscriptions on the event hub) and `memory`
 * (process memory after a full GC, when started with --expose-gc). Nothing is added to src/.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { writeHeapSnapshot } from "node:v8";
import { buildApp } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { serve } from "./events-ipc.js";

const app = buildApp({ config: loadConfig() });
const gc = (globalThis as { gc?: () => void }).gc;

const handlers = {
  /** Diagnosis only (BENCH_EVENTS_HEAP): a heap snapshot, after a full GC. */
  heapSnapshot: ({ path }: { path: string }) => {
    gc?.();
    return writeHeapSnapshot(path);
  },
  sql: async ({ text, params }: { text: string; params?: unknown[] }) =>
    app.deps.database.raw<Record<string, unknown>>(text, params),
  subscribers: () => app.deps.hub.subscribers,
  memory: async () => {
    // Two full collections a turn apart: the second catches what the first left to finalizers.
    gc?.();
    await sleep(50);
    gc?.();
    const m = process.memoryUsage();
    return {
      gc: gc !== undefined,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
      arrayBuffers: m.arrayBuffers,
      subscribers: app.deps.hub.subscribers,
    };
  },
};
export type EventsServerApi = typeof handlers;

try {
  const { url } = await app.start();
  serve(handlers, () => app.stop(), url);
} catch (error) {
  process.send?.({ type: "error", message: error instanceof Error ? error.message : String(error) });
  await app.stop().catch(() => undefined);
  process.exit(1);
}
