import { markers, median } from "./report.js";

export type Target = "pglite" | "postgres";

export const TARGET_LABEL: Record<Target | "raw", string> = {
  pglite: "ours, PGlite",
  postgres: "ours, PostgreSQL",
  raw: "raw ws broadcast",
};

/** CPU use over a measured window, in % of one core. */
export interface CpuShare {
  readonly server: number;
  readonly clients: number;
  readonly producer: number;
  readonly postgres: number;
  /** Everything the benchmark did not start: above a few %, the figures are noisy. */
  readonly other: number;
  readonly seconds: number;
}

export interface FanoutRound {
  readonly target: Target | "raw";
  readonly round: number;
  readonly subscribers: number;
  /** Events committed (ours) or messages broadcast (raw). */
  readonly events: number;
  readonly deliveries: number;
  /** First to last delivery, over all subscribers. */
  readonly seconds: number;
  /** Ours: first request sent to last response (the producer's burst); raw: the broadcast loop. */
  readonly commitSeconds: number;
  readonly cpu: CpuShare | undefined;
}

interface Memory {
  readonly gc: boolean;
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly subscribers: number;
}

export interface MemoryResult {
  readonly target: Target;
  readonly subscribers: number;
  readonly before: Memory;
  readonly after: Memory;
  readonly openSeconds: number;
}

export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface LatencyResult {
  readonly target: Target;
  readonly subscribers: number;
  readonly rate: number;
  readonly duration: number;
  readonly events: number;
  readonly deliveries: number;
  /** Delivery time − arrival of the response of the request that committed the event (ms). */
  readonly afterResponse: Summary;
  /** Delivery time − the event's occurredAt (the transaction's start) (ms). */
  readonly afterOccurred: Summary;
  /** Per event: the last subscriber's delivery − the response (ms). */
  readonly lastSubscriber: Summary;
  readonly requestMs: Summary;
  readonly cpu: CpuShare | undefined;
}

export interface ExpiryResult {
  readonly target: Target;
  readonly tokens: number;
  readonly window: number;
  readonly lead: number;
  readonly insertSeconds: number;
  readonly events: number;
  readonly distinctTokens: number;
  /** token_events.occurred_at − access_tokens.expires_at (ms). */
  readonly lag: Summary;
  /** A live subscriber's delivery time − the token's expiresAt (ms). */
  readonly delivery: Summary;
  readonly delivered: number;
  readonly cpu: CpuShare | undefined;
}

export interface EventsReport {
  readonly command: string;
  readonly revision: string;
  readonly date: string;
  readonly machine: string;
  readonly pinning: boolean;
  readonly settings: {
    readonly fanout: {
      subscribers: number;
      events: number;
      warmup: number;
      rounds: number;
      concurrency: number;
    };
    readonly latency: { subscribers: number; rate: number; duration: number; warmup?: number };
    readonly expiry: { tokens: number; window: number; lead: number };
  };
  readonly fanout: readonly FanoutRound[];
  readonly payloadBytes: number;
  readonly memory: readonly MemoryResult[];
  readonly latency: readonly LatencyResult[];
  readonly expiry: readonly ExpiryResult[];
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
}

const { start: START, end: END } = markers("events");

const int = (v: number) => Math.round(v).toLocaleString("en-US");
const ms = (v: number) => (Number.isNaN(v) ? "—" : Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1));
const pct = (v: number | undefined) => (v === undefined ? "—" : `${Math.round(v)}%`);
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
const rate = (r: FanoutRound) => r.deliveries / r.seconds;

/** Server CPU µs per delivery in a round. */
function cost(round: FanoutRound): number | undefined {
  const c = round.cpu;
  return c ? ((c.server / 100) * c.seconds * 1e6) / round.deliveries : undefined;
}

/** Median server CPU µs per delivery of a target's rounds. */
function medianCost(rounds: readonly FanoutRound[], target: Target | "raw"): number | undefined {
  const costs = rounds.filter((r) => r.target === target).flatMap((r) => cost(r) ?? []);
  return costs.length ? median(costs) : undefined;
}

/** Median deliveries/s of a target's rounds. */
export function medianRate(rounds: readonly FanoutRound[], target: Target | "raw"): number | undefined {
  const mine = rounds.filter((r) => r.target === target);
  return mine.length ? median(mine.map(rate)) : undefined;
}

function fanoutSection(r: EventsReport): string {
  const f = r.settings.fanout;
  if (r.fanout.length === 0) return "### 1. Fan-out throughput\n\nNot run (BENCH_EVENTS_CASES).\n";
  const raw = medianRate(r.fanout, "raw");
  const rows = r.fanout.map((x) => {
    const c = x.cpu;
    const perDelivery = cost(x);
    return `| ${TARGET_LABEL[x.target]} | ${x.round} | ${int(x.events)} | ${int(x.deliveries)} | ${x.seconds.toFixed(2)} | ${int(rate(x))} | ${x.target === "raw" ? "—" : int(x.events / x.commitSeconds)} | ${pct(c?.server)} | ${perDelivery === undefined ? "—" : perDelivery.toFixed(1)} | ${pct(c?.clients)} | ${x.target === "raw" ? "—" : pct(c?.producer)} | ${pct(c?.postgres)} | ${pct(c?.other)} |`;
  });
  const targets = [...new Set(r.fanout.map((x) => x.target))].filter((t): t is Target => t !== "raw");
  const rawCost = medianCost(r.fanout, "raw");
  const ratios = targets.map((t) => {
    const ours = medianRate(r.fanout, t) ?? Number.NaN;
    const x = raw ? ours / raw : Number.NaN;
    const cost = medianCost(r.fanout, t);
    const costRatio =
      cost && rawCost
        ? ` (server CPU per delivery: ours ${cost.toFixed(1)} µs, raw ${rawCost.toFixed(1)} µs: ${(rawCost / cost).toFixed(2)})`
        : "";
    return `- ${TARGET_LABEL[t]}: ${int(ours)} deliveries/s over raw ws ${raw ? int(raw) : "—"}/s = **${x.toFixed(2)}** (target ≥ 0.5: ${x >= 0.5 ? "met" : "**missed**"})${costRatio}`;
  });
  return `### 1. Fan-out throughput: ${int(f.subscribers)} subscribers on one instance

Each round: ${int(f.events)} events (\`POST /token\` client_credentials, ${f.concurrency} requests in flight, as fast as the server commits them) delivered to ${int(f.subscribers)} admin subscriptions of \`${"subscription { tokenEvents { id type reason occurredAt token { id kind keyType applicationId userId scopes expiresAt } } }"}\` (one WebSocket each); after ${int(f.warmup)} warm-up events. The raw baseline broadcasts the very messages subscriber 0 received in our first round (${int(r.payloadBytes)} bytes on average, byte-identical for every subscriber) from a plain \`ws\` WebSocketServer to ${int(f.subscribers)} plain \`ws\` clients. Deliveries/s = deliveries ÷ (last delivery − first delivery), over all subscribers.

| server | round | events | deliveries | first→last s | deliveries/s | events committed/s | server CPU | server CPU µs per delivery | subscribers' CPU | producer CPU | PostgreSQL CPU | other programs |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}

Ratio (median round of each, deliveries/s, ours over raw ws):
${ratios.join("\n")}
`;
}

function latencySection(r: EventsReport): string {
  const l = r.settings.latency;
  if (r.memory.length === 0) return "### 2. Fan-out latency and memory\n\nNot run (BENCH_EVENTS_CASES).\n";
  const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
  const memRows = r.memory.map((m) => {
    const per = (k: "rss" | "heapUsed" | "heapTotal" | "external") =>
      (m.after[k] - m.before[k]) / m.subscribers;
    const objects = per("heapUsed") + per("external");
    return `| ${TARGET_LABEL[m.target]} | ${int(m.subscribers)} | ${mb(m.before.heapUsed)} → ${mb(m.after.heapUsed)} | **${kb(per("heapUsed"))}** | ${kb(per("external"))} | ${kb(per("heapTotal"))} | ${mb(m.before.rss)} → ${mb(m.after.rss)} | **${kb(per("rss"))}** | ${objects < 20 * 1024 ? "met" : "**missed**"} | ${per("rss") < 20 * 1024 ? "met" : "**missed**"} | ${m.openSeconds.toFixed(1)} |`;
  });
  const trio = (x: Summary) => `${ms(x.p50)} / **${ms(x.p99)}** / ${ms(x.max)}`;
  const latRows = r.latency.map(
    (x) =>
      `| ${TARGET_LABEL[x.target]} | ${int(x.subscribers)} | ${int(x.events)} | ${int(x.deliveries)} | ${trio(x.afterOccurred)} | ${ms(x.afterResponse.p50)} / ${ms(x.afterResponse.p99)} / ${ms(x.afterResponse.max)} | ${ms(x.lastSubscriber.p99)} | ${ms(x.requestMs.p50)} / ${ms(x.requestMs.p99)} | ${pct(x.cpu?.server)} | ${pct(x.cpu?.clients)} | ${pct(x.cpu?.other)} | ${x.afterOccurred.p99 < 250 ? "met" : "**missed**"} |`,
  );
  return `### 2. Fan-out latency (${int(l.subscribers)} subscribers, ${l.rate} events/s for ${l.duration} s) and memory per idle subscriber

Memory: the server's \`process.memoryUsage()\` after two full GCs (\`--expose-gc\`, bench/events-server.ts), before and after ${int(l.subscribers)} idle subscriptions of the console selection were opened (one WebSocket each). So that allocator pages and caches a first wave leaves behind do not count as per-subscriber memory, as many are opened and closed once before the "before" reading. Target < 20 KB per subscriber: judged on what the subscriptions hold (heap used + external), and separately on RSS, which also counts V8 heap pages reserved beyond the objects (the heapTotal column) and native memory.

| server | subscribers | heap used before → after | heap used per subscriber | external per subscriber | heapTotal per subscriber | RSS before → after | RSS per subscriber | target (heap + external) | target (RSS) | seconds to open them all |
| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | --- | --- | ---: |
${memRows.join("\n")}

Latency: after ${l.warmup ?? 0} s of events at the same rate (not counted), one \`POST /token\` at a time, ${l.rate} per second on a fixed schedule, for ${l.duration} s, with the ${int(l.subscribers)} subscriptions open. For every delivery (each subscriber, each event), its arrival at the subscriber minus:
- the event's \`occurredAt\` (the transaction's \`now()\`, taken before the commit): an upper bound of commit-to-delivery, which the target is judged on;
- the arrival of the response of the request that committed it (the producer records it): a lower bound, negative when the server fanned the event out before writing the response (on PGlite the notification is delivered in-process, during the request).

Times are wall clock in processes on the same machine. Target p99 < 250 ms.

| server | subscribers | events | deliveries | after occurredAt p50 / p99 / max ms | after the response p50 / p99 / max ms | p99 ms, last subscriber of each event, after the response | POST /token p50 / p99 ms | server CPU | subscribers' CPU | other programs | target |
| --- | ---: | ---: | ---: | --- | --- | ---: | --- | ---: | ---: | ---: | --- |
${latRows.join("\n") || "| (latency not run) |"}
`;
}

function expirySection(r: EventsReport): string {
  const e = r.settings.expiry;
  if (r.expiry.length === 0) return "### 3. Expiry\n\nNot run (BENCH_EVENTS_CASES).\n";
  const rows = r.expiry.map(
    (x) =>
      `| ${TARGET_LABEL[x.target]} | ${int(x.tokens)} | ${x.insertSeconds.toFixed(1)} | ${int(x.events)} (${int(x.distinctTokens)} tokens) | ${ms(x.lag.p50)} | **${ms(x.lag.p99)}** | ${ms(x.lag.max)} | ${int(x.delivered)}: ${ms(x.delivery.p50)} / ${ms(x.delivery.p99)} / ${ms(x.delivery.max)} | ${pct(x.cpu?.server)} | ${pct(x.cpu?.postgres)} | ${pct(x.cpu?.other)} | ${x.lag.p99 < 2000 ? "met" : "**missed**"} |`,
  );
  return `### 3. Expiry: ${int(e.tokens)} tokens expiring within ${e.window} s

${int(e.tokens)} \`access_tokens\` rows inserted in one statement (\`generate_series\`; valid rows for the provisioned application key, issued now, \`expires_at\` spread evenly from ${e.lead} s to ${e.lead + e.window} s after the insert), then the server's own sweeper (every SWEEPER_INTERVAL_MS = 1000 ms, batches of 1,000) announces them. Lag per EXPIRED event = \`token_events.occurred_at − access_tokens.expires_at\`, queried after the last token was announced; each token must have exactly one EXPIRED event. One admin subscriber (\`tokenEvents(filter: { types: [EXPIRED] })\`) also records when each event reached it. Target p99 < 2 s.

| server | tokens | insert s | EXPIRED events | lag p50 ms | lag p99 ms | lag max ms | subscriber: delivered, delivery − expiresAt p50 / p99 / max ms | server CPU | PostgreSQL CPU | other programs | target |
| --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- |
${rows.join("\n")}
`;
}

/** The events benchmark's section of BENCHMARKS.md, markers included. */
export function renderEventsSection(r: EventsReport): string {
  return `${START}
## Live token events: fan-out, latency, expiry

Command: \`${r.command}\` — run on ${r.date}, at ${r.revision}.
Machine: ${r.machine}.
${r.pinning ? "The server under test (or the raw ws server) runs on core 0 (`taskset -c 0`); the subscribers (one process, plain `ws` sockets) and the event producer run on core 1; PostgreSQL itself is not pinned." : "**`taskset` was not available: nothing was pinned to cores.**"}

${fanoutSection(r)}
${latencySection(r)}
${expirySection(r)}${r.problems.length > 0 ? `\n**Failed checks in this run:**\n${r.problems.map((p) => `- ${p}`).join("\n")}\n` : ""}${r.warnings.length > 0 ? `\nNoise warnings:\n${r.warnings.map((p) => `- ${p}`).join("\n")}\n` : ""}
How to read it:
- Every delivery is checked: each subscriber must receive each event exactly once, and nothing else (no error, no close); failures are listed above as failed checks.
- "server CPU µs per delivery" is the server's CPU time in the window divided by the deliveries: the cost to cut. The subscribers' process does only a prefix check and a counter per message, but at raw-ws rates it can itself be the limit (its CPU near 100%): then the raw figure understates what raw ws could do, and the ratio flatters ours; the CPU-cost ratio (server µs per delivery, raw over ours) does not depend on that.
- CPU columns are % of one core over the measured window; "other programs" is CPU used by anything the benchmark did not start (the harness waits up to BENCH_QUIET_WAIT seconds for a quiet machine before each case).
- Quick run: \`BENCH_SUITES=events BENCH_FANOUT_EVENTS=200 BENCH_FANOUT_ROUNDS=1 BENCH_LATENCY_DURATION=5 BENCH_EXPIRY_TOKENS=10000 BENCH_EXPIRY_WINDOW=10 BENCH_OUTPUT=/tmp/bench.md npm run bench\`; see bench/events-run.ts for every setting.
${END}`;
}
