/**
 * Request/reply over the IPC channel between the harness and the events suite's children
 * (events-server.ts, events-clients.ts, events-producer.ts, events-raw-server.ts). A child
 * announces itself with the harness's `ready` message (see ServerChild.start) and then answers
 * `call` messages with `reply`; `stop` (or the harness going away) stops it.
 */
import type { ChildProcess } from "node:child_process";

// biome-ignore lint/suspicious/noExplicitAny: handler arguments are checked by the typed `call`.
type Handler = (args: any) => unknown;
export type Handlers = Record<string, Handler>;

interface Call {
  readonly type: "call";
  readonly id: number;
  readonly method: string;
  readonly args: unknown;
}
interface Reply {
  readonly type: "reply";
  readonly id: number;
  readonly result?: unknown;
  readonly error?: string;
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Child side: sends `ready`, answers calls with `handlers`, runs `stop` once on request or orphaning. */
export function serve(handlers: Handlers, stop: () => Promise<void>, url = ""): void {
  let _stopping: Promise<void> | undefined;
  const stopOnce = (code: number) => {
    _stopping ??= (async () => {
      setTimeout(() => process.exit(1), 15_000).unref();
      try {
        await stop();
      } finally {
        process.exit(code);
      }
    })();
  };
  process.on("message", async (m: Call | { type: "stop" }) => {
    if (m.type === "stop") return stopOnce(0);
    if (m.type !== "call") return;
    let reply: Reply;
    try {
      const handler = handlers[m.method];
      if (!handler) throw new Error(`unknown method ${m.method}`);
      reply = { type: "reply", id: m.id, result: (await handler(m.args)) ?? null };
    } catch (error) {
      reply = { type: "reply", id: m.id, error: message(error) };
    }
    process.send?.(reply);
  });
  // The harness went away (crashed or was killed): do not outlive it.
  process.on("disconnect", () => stopOnce(1));
  process.on("SIGTERM", () => stopOnce(0));
  process.on("SIGINT", () => stopOnce(0));
  process.send?.({ type: "ready", url });
}

/** A method's argument; `{}` for methods that take none. */
export type Args<H extends Handlers, M extends keyof H> = Parameters<H[M]> extends []
  ? Record<string, never>
  : Parameters<H[M]>[0];

let nextId = 0;

/** Harness side: calls `method` on a child serving `H`, bounded by `timeoutMs`. */
export function call<H extends Handlers, M extends keyof H & string>(
  child: ChildProcess,
  method: M,
  args: Args<H, M>,
  timeoutMs = 120_000,
): Promise<Awaited<ReturnType<H[M]>>> {
  const id = ++nextId;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off("message", onMessage);
      reject(new Error(`${method}: no reply within ${timeoutMs} ms`));
    }, timeoutMs);
    const onExit = () => {
      clearTimeout(timer);
      child.off("message", onMessage);
      reject(new Error(`${method}: the child exited`));
    };
    const onMessage = (m: Reply) => {
      if (m?.type !== "reply" || m.id !== id) return;
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
      if (m.error !== undefined) reject(new Error(`${method}: ${m.error}`));
      else resolve(m.result as Awaited<ReturnType<H[M]>>);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
    child.send({ type: "call", id, method, args } satisfies Call);
  });
}
