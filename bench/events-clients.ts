/**
 * Events benchmark child: many WebSocket subscribers in one process (the harness pins it to the
 * core the server does not use). Plain `ws` sockets, each speaking just enough of
 * graphql-transport-ws to hold one subscription (connection_init with the admin's token,
 * connection_ack, subscribe with id "1"), or nothing at all for the raw `ws` baseline. Every
 * socket's subscription id is "1", so every subscriber receives byte-identical messages.
 *
 * Per message the client does as little as it can: in `count` mode a prefix check and a counter
 * (no JSON parsing); in `latency` mode it also reads the event id out of the text and keeps the
 * arrival time (the whole message is parsed once per event, not per delivery).
 */
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { serve } from "./events-ipc.js";

/** Sub-millisecond wall-clock time, comparable across processes on the machine. */
const now = () => performance.timeOrigin + performance.now();

/** The start of every `next` message on subscription "1" (graphql-ws writes id, type, payload). */
const NEXT = Buffer.from('{"id":"1","type":"next"');
const EVENT_ID = Buffer.from('"tokenEvents":{"id":"');

type Mode = "off" | "count" | "latency";

interface EventDeliveries {
  readonly id: string;
  readonly type: string;
  readonly occurredAt: number;
  readonly expiresAt: number | null;
  readonly times: number[];
}

const sockets: WebSocket[] = [];
let perSocket = new Uint32Array(0);
let mode: Mode = "off";
let total = 0;
let first = 0;
let last = 0;
let others = 0;
const otherSamples: string[] = [];
let closed = 0;
const closeCodes: Record<string, number> = {};
let capture: string[] | undefined;
const events = new Map<string, EventDeliveries>();

function onDelivery(index: number, data: Buffer): void {
  if (data.length <= NEXT.length || data.compare(NEXT, 0, NEXT.length, 0, NEXT.length) !== 0) {
    others += 1;
    if (otherSamples.length < 5) otherSamples.push(data.toString("utf8", 0, 300));
    return;
  }
  const t = now();
  if (total === 0) first = t;
  last = t;
  total += 1;
  perSocket[index] = (perSocket[index] ?? 0) + 1;
  if (capture && index === 0) capture.push(data.toString("utf8"));
  if (mode === "latency") {
    const at = data.indexOf(EVENT_ID);
    const start = at + EVENT_ID.length;
    const end = at < 0 ? -1 : data.indexOf(0x22, start);
    const id = at < 0 ? "?" : data.toString("latin1", start, end);
    let event = events.get(id);
    if (!event) {
      const parsed = JSON.parse(data.toString("utf8")) as {
        payload: {
          data?: {
            tokenEvents?: { type: string; occurredAt: string; token?: { expiresAt?: string | null } };
          };
        };
      };
      const e = parsed.payload.data?.tokenEvents;
      event = {
        id,
        type: e?.type ?? "?",
        occurredAt: e ? Date.parse(e.occurredAt) : Number.NaN,
        expiresAt: e?.token?.expiresAt ? Date.parse(e.token.expiresAt) : null,
        times: [],
      };
      events.set(id, event);
    }
    event.times.push(t);
  }
}

/** Opens one socket; resolves once it is ready to receive (acknowledged and subscribed, for GraphQL). */
function openSocket(
  url: string,
  graphql: { token: string; query: string; variables?: Record<string, unknown> } | undefined,
): Promise<void> {
  const index = sockets.length;
  const socket = new WebSocket(url, graphql ? "graphql-transport-ws" : undefined, {
    skipUTF8Validation: true,
    perMessageDeflate: false,
  });
  sockets.push(socket);
  return new Promise((resolve, reject) => {
    let ready = false;
    socket.once("error", (error) => {
      if (!ready) reject(error);
    });
    socket.on("close", (code) => {
      closed += 1;
      closeCodes[code] = (closeCodes[code] ?? 0) + 1;
      if (!ready) reject(new Error(`socket ${index} closed (${code}) before it was ready`));
    });
    socket.once("open", () => {
      if (!graphql) {
        ready = true;
        socket.on("message", (data: Buffer) => onDelivery(index, data));
        resolve();
        return;
      }
      socket.send(
        JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${graphql.token}` } }),
      );
      socket.once("message", (data: Buffer) => {
        const text = data.toString("utf8");
        if (!text.includes('"connection_ack"')) {
          reject(new Error(`socket ${index}: expected connection_ack, got ${text.slice(0, 200)}`));
          return;
        }
        socket.on("message", (next: Buffer) => onDelivery(index, next));
        socket.send(
          JSON.stringify({
            id: "1",
            type: "subscribe",
            payload: { query: graphql.query, ...(graphql.variables ? { variables: graphql.variables } : {}) },
          }),
        );
        ready = true;
        resolve();
      });
    });
  });
}

async function openMany(count: number, concurrency: number, open: () => Promise<void>): Promise<number> {
  const started = performance.now();
  let remaining = count;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (remaining > 0) {
        remaining -= 1;
        await open();
      }
    }),
  );
  perSocket = new Uint32Array(sockets.length);
  return performance.now() - started;
}

const handlers = {
  openGraphql: (args: {
    url: string;
    token: string;
    query: string;
    variables?: Record<string, unknown>;
    count: number;
    concurrency: number;
  }) => openMany(args.count, args.concurrency, () => openSocket(args.url, args)),
  openRaw: (args: { url: string; count: number; concurrency: number }) =>
    openMany(args.count, args.concurrency, () => openSocket(args.url, undefined)),
  /** Zeroes the counters and starts counting in `mode`; `capture` keeps socket 0's messages. */
  reset: (args: { mode: Mode; capture?: boolean }) => {
    mode = args.mode;
    total = 0;
    first = 0;
    last = 0;
    others = 0;
    otherSamples.length = 0;
    perSocket.fill(0);
    events.clear();
    capture = args.capture ? [] : undefined;
    return null;
  },
  stats: () => {
    let min = Number.POSITIVE_INFINITY;
    let max = 0;
    for (const n of perSocket) {
      min = Math.min(min, n);
      max = Math.max(max, n);
    }
    return {
      sockets: sockets.length,
      open: sockets.filter((s) => s.readyState === WebSocket.OPEN).length,
      total,
      first,
      last,
      perSocketMin: sockets.length ? min : 0,
      perSocketMax: max,
      others,
      otherSamples,
      closed,
      closeCodes,
    };
  },
  captured: () => capture ?? [],
  latency: () => [...events.values()],
  closeAll: async () => {
    const closing = sockets.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.readyState === WebSocket.CLOSED) return resolve();
          s.once("close", () => resolve());
          s.close(1000);
          setTimeout(() => {
            s.terminate();
            resolve();
          }, 5_000).unref();
        }),
    );
    await Promise.all(closing);
    sockets.length = 0;
    perSocket = new Uint32Array(0);
    closed = 0;
    for (const code of Object.keys(closeCodes)) delete closeCodes[code];
    mode = "off";
    return null;
  },
};
export type EventsClientsApi = typeof handlers;

serve(handlers, async () => {
  for (const s of sockets) s.terminate();
});
