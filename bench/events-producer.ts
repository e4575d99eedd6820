/**
 * Events benchmark child: produces token events the way clients do, with `POST /token`
 * (client_credentials): each 200 is one committed ISSUED event. `burst` sends a fixed number as
 * fast as the server answers (a fixed number of requests in flight); `paced` sends one request
 * at a time on a fixed schedule and records, for each, when it was sent and when its response
 * arrived (the commit is between the two), in wall-clock milliseconds comparable across processes.
 */
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { serve } from "./events-ipc.js";

const now = () => performance.timeOrigin + performance.now();

interface Target {
  readonly url: string;
  readonly clientId: string;
  readonly clientSecret: string;
}

function requester(target: Target): () => Promise<number> {
  const basic = Buffer.from(
    `${encodeURIComponent(target.clientId)}:${encodeURIComponent(target.clientSecret)}`,
  ).toString("base64");
  const init = {
    method: "POST",
    headers: { authorization: `Basic ${basic}`, "content-type": "application/x-www-form-urlencoded" },
    body: "grant_type=client_credentials",
  };
  return async () => {
    const response = await fetch(`${target.url}/token`, { ...init, signal: AbortSignal.timeout(30_000) });
    await response.arrayBuffer();
    return response.status;
  };
}

const handlers = {
  burst: async (args: Target & { count: number; concurrency: number }) => {
    const send = requester(args);
    const statuses: Record<string, number> = {};
    let remaining = args.count;
    let failed = 0;
    const started = now();
    await Promise.all(
      Array.from({ length: Math.min(args.concurrency, args.count) }, async () => {
        while (remaining > 0) {
          remaining -= 1;
          try {
            const status = await send();
            statuses[status] = (statuses[status] ?? 0) + 1;
          } catch {
            failed += 1;
          }
        }
      }),
    );
    return { started, ended: now(), ok: statuses[200] ?? 0, statuses, failed };
  },
  paced: async (args: Target & { rate: number; seconds: number }) => {
    const send = requester(args);
    const requests: Array<{ sent: number; responded: number; status: number }> = [];
    const count = Math.round(args.rate * args.seconds);
    const start = now() + 100;
    for (let i = 0; i < count; i++) {
      const due = start + (i * 1000) / args.rate;
      const wait = due - now();
      if (wait > 0) await sleep(wait);
      const sent = now();
      let status = 0;
      try {
        status = await send();
      } catch {}
      requests.push({ sent, responded: now(), status });
    }
    return requests;
  },
};
export type ProducerApi = typeof handlers;

serve(handlers, async () => {});
