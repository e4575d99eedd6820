/**
 * The `events` suite of `npm run bench` (BENCH_SUITES): live token events, measured on our
 * service in child processes pinned to one core, with the subscribers (raw `ws` sockets speaking
 * graphql-transport-ws) and the event producer pinned to the other core.
 *
 * 1. Fan-out throughput: BENCH_FANOUT_SUBSCRIBERS admin subscriptions of the console's
 *    tokenEvents selection on one instance; BENCH_FANOUT_EVENTS events produced as fast as the
 *    server commits them (POST /token client_credentials, BENCH_FANOUT_CONCURRENCY in flight);
 *    deliveries per second across all subscribers (deliveries / first-to-last delivery). Compared
 *    with a raw `ws` broadcast of the very same messages to as many plain `ws` clients.
 * 2. Latency and memory: BENCH_LATENCY_SUBSCRIBERS idle subscriptions (server memory before and
 *    after, after a full GC), then BENCH_LATENCY_RATE events/s for BENCH_LATENCY_DURATION s:
 *    delivery time minus the event's occurredAt (an upper bound of commit-to-delivery) and minus
 *    the arrival of the response of the request that committed it (a lower bound).
 * 3. Expiry: BENCH_EXPIRY_TOKENS access_tokens rows inserted in bulk, expiring over the next
 *    BENCH_EXPIRY_WINDOW s (starting BENCH_EXPIRY_LEAD s after the insert); lag of each EXPIRED
 *    event (token_events.occurred_at − access_tokens.expires_at), and of its delivery to a live
 *    subscriber.
 *
 * Settings (environment), besides BENCH_DATABASE_URL, BENCH_OUTPUT and BENCH_QUIET_WAIT (run.ts):
 *   BENCH_EVENTS_CASES         comma-separated subset of fanout,latency,expiry (default all)
 *   BENCH_EVENTS_TARGETS       drivers for fan-out and latency: pglite,postgres (default both)
 *   BENCH_EXPIRY_TARGETS       drivers for expiry (default postgres,pglite)
 *   BENCH_FANOUT_SUBSCRIBERS   (default 1000)      BENCH_FANOUT_EVENTS  (default 1000)
 *   BENCH_FANOUT_WARMUP        warm-up events before the rounds (default 200)
 *   BENCH_FANOUT_ROUNDS        measured rounds, ours and raw alike; the median counts (default 3)
 *   BENCH_FANOUT_CONCURRENCY   producer requests in flight (default 32)
 *   BENCH_LATENCY_SUBSCRIBERS  (default 2000)      BENCH_LATENCY_RATE   events/s (default 5)
 *   BENCH_LATENCY_DURATION     seconds (default 30), after BENCH_LATENCY_WARMUP s (default 2) at
 *                              the same rate, not counted
 *   BENCH_EVENTS_DUMP          a path prefix: per-event latency times as JSON (diagnosis only)
 *   BENCH_EVENTS_HEAP          a path prefix: server heap snapshots around the idle subscriptions
 *                              (diagnosis only)
 *   BENCH_EXPIRY_TOKENS        (default 100000)    BENCH_EXPIRY_WINDOW  seconds (default 60)
 *   BENCH_EXPIRY_LEAD          seconds from the insert to the first expiry (default 10)
 *   BENCH_EXPIRY_SUBSCRIBER    0: no live subscriber during the expiry case (default 1)
 */
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { pinning, ServerChild } from "./children.js";
import { waitForQuiet } from "./cpu.js";
import type { EventsClientsApi } from "./events-clients.js";
import { type Args, call } from "./events-ipc.js";
import type { ProducerApi } from "./events-producer.js";
import type { RawServerApi } from "./events-raw-server.js";
import {
  type CpuShare,
  type ExpiryResult,
  type FanoutRound,
  type LatencyResult,
  type MemoryResult,
  renderEventsSection,
  TARGET_LABEL,
  type Target,
} from "./events-report.js";
import type { EventsServerApi } from "./events-server.js";
import { commandLine, postgresVersion } from "./meta.js";
import { provisionClient } from "./provision.js";
import { writeSection } from "./report.js";
import { createDatabase, serviceEnv } from "./servers.js";
import {
  LOAD_CORE as CLIENT_CORE,
  Findings,
  log,
  QUIET_THRESHOLD,
  SERVER_CORE,
  settings as shared,
} from "./settings.js";
import { onTeardown } from "./teardown.js";

/** The admin console's selection (DESIGN.md): every subscriber holds this one. */
export const CONSOLE_SELECTION =
  "subscription { tokenEvents { id type reason occurredAt token { id kind keyType applicationId userId scopes expiresAt } } }";
const EXPIRED_SELECTION =
  "subscription { tokenEvents(filter: { types: [EXPIRED] }) { id type occurredAt token { id expiresAt } } }";

const env = process.env;
const list = (name: string, fallback: string) =>
  (env[name] ?? fallback)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
function number(name: string, fallback: number, integer = true): number {
  const value = env[name] === undefined ? fallback : Number(env[name]);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value)))
    throw new Error(`${name} must be a positive ${integer ? "integer" : "number"}`);
  return value;
}

export const eventsSettings = {
  cases: list("BENCH_EVENTS_CASES", "fanout,latency,expiry"),
  targets: list("BENCH_EVENTS_TARGETS", "pglite,postgres") as Target[],
  expiryTargets: list("BENCH_EXPIRY_TARGETS", "postgres,pglite") as Target[],
  fanout: {
    subscribers: number("BENCH_FANOUT_SUBSCRIBERS", 1000),
    events: number("BENCH_FANOUT_EVENTS", 1000),
    warmup: number("BENCH_FANOUT_WARMUP", 200),
    rounds: number("BENCH_FANOUT_ROUNDS", 3),
    concurrency: number("BENCH_FANOUT_CONCURRENCY", 32),
  },
  latency: {
    subscribers: number("BENCH_LATENCY_SUBSCRIBERS", 2000),
    rate: number("BENCH_LATENCY_RATE", 5, false),
    duration: number("BENCH_LATENCY_DURATION", 30, false),
    warmup: number("BENCH_LATENCY_WARMUP", 2, false),
  },
  expiry: {
    tokens: number("BENCH_EXPIRY_TOKENS", 100_000),
    window: number("BENCH_EXPIRY_WINDOW", 60, false),
    lead: number("BENCH_EXPIRY_LEAD", 10, false),
  },
  // Shared with the other suites (bench/settings.ts checks them).
  databaseUrl: shared.databaseUrl,
  output: shared.output,
  quietWait: shared.quietWait,
};
const s = eventsSettings;
for (const c of s.cases)
  if (!["fanout", "latency", "expiry"].includes(c)) throw new Error(`BENCH_EVENTS_CASES: unknown case ${c}`);
for (const t of [...s.targets, ...s.expiryTargets])
  if (!(t in TARGET_LABEL)) throw new Error(`BENCH_EVENTS_TARGETS/BENCH_EXPIRY_TARGETS: unknown ${t}`);

/**
 * The suite's time budget, in the harness's unit: cases of (warm-up + duration + quiet wait +
 * 45) seconds (run.ts sums them over the suites for its overall time limit).
 */
export const eventsCaseCount = () =>
  Math.ceil(eventsBudgetMs() / 1000 / (shared.warmup + shared.duration + shared.quietWait + 45));

/** An upper bound for the whole suite. */
function eventsBudgetMs(): number {
  const quiet = s.quietWait + 30;
  const servers = new Set([...s.targets, ...s.expiryTargets]).size + 1;
  let seconds = 120 + servers * 90;
  if (s.cases.includes("fanout"))
    seconds += (s.targets.length + 1) * ((s.fanout.rounds + 1) * (quiet + 120) + 300);
  if (s.cases.includes("latency")) seconds += s.targets.length * (quiet + s.latency.duration + 600);
  if (s.cases.includes("expiry"))
    seconds += s.expiryTargets.length * (quiet + s.expiry.lead + s.expiry.window + 600);
  return seconds * 1000;
}

const findings = new Findings();
const { problems, warnings } = findings;

// ---------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc): the pids we started, PostgreSQL, and everything else.

const TICKS = 100;
function ticksOf(pid: number | "self"): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}
function postgresTicks(): number {
  let sum = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === "postgres") sum += ticksOf(Number(entry));
    } catch {}
  }
  return sum;
}
function busyTicks(): number {
  const [, ...v] = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "").trim().split(/\s+/).map(Number);
  return v.slice(0, 8).reduce((a, b) => a + b, 0) - (v[3] ?? 0) - (v[4] ?? 0);
}
/** Starts a CPU window over `pids`; the returned function ends it (% of one core each). */
function cpuWindow(pids: {
  server?: number;
  clients?: number;
  producer?: number;
}): () => CpuShare | undefined {
  let start: number[];
  const read = () => [
    performance.now(),
    busyTicks(),
    ticksOf(pids.server ?? 0),
    ticksOf(pids.clients ?? 0),
    ticksOf(pids.producer ?? 0),
    postgresTicks(),
    ticksOf("self"),
  ];
  try {
    start = read();
  } catch {
    return () => undefined;
  }
  return () => {
    const end = read();
    const d = end.map((v, i) => v - (start[i] ?? 0));
    const seconds = (d[0] ?? 1) / 1000;
    const pct = (t: number | undefined) => (100 * (t ?? 0)) / TICKS / seconds;
    const [, busy, server, clients, producer, pg, self] = d.map((t, i) =>
      i === 0 ? 0 : Math.max(0, pct(t)),
    );
    return {
      server: server ?? 0,
      clients: clients ?? 0,
      producer: producer ?? 0,
      postgres: pg ?? 0,
      other: Math.max(
        0,
        (busy ?? 0) - (server ?? 0) - (clients ?? 0) - (producer ?? 0) - (pg ?? 0) - (self ?? 0),
      ),
      seconds,
    };
  };
}

async function quiet(label: string): Promise<void> {
  const busy = await waitForQuiet(QUIET_THRESHOLD, s.quietWait * 1000);
  if (busy !== undefined && busy > QUIET_THRESHOLD)
    warnings.push(`${label}: the machine was busy before the case (${Math.round(busy)}% of a core)`);
}

// ---------------------------------------------------------------------------------------------
// Children.

interface Ours {
  readonly target: Target;
  readonly server: ServerChild;
  readonly wsUrl: string;
  readonly adminToken: string;
  readonly client: { clientId: string; clientSecret: string };
}

async function login(url: string, admin: { username: string; password: string }): Promise<string> {
  const response = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/graphql-response+json" },
    body: JSON.stringify({
      query:
        "mutation($input: LoginInput!) { login(input: $input) { __typename ... on LoginPayload { accessToken } ... on Error { message } } }",
      variables: { input: admin },
    }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await response.json()) as { data?: { login?: { accessToken?: string; message?: string } } };
  const token = body.data?.login?.accessToken;
  if (!token) throw new Error(`admin login failed: ${JSON.stringify(body)}`);
  return token;
}

/** Our service over a fresh database, with the admin logged in and one provisioned client. */
async function startOurs(target: Target): Promise<Ours> {
  const admin = { username: "admin", password: randomBytes(18).toString("base64url") };
  const dataDir = await mkdtemp(join(tmpdir(), "tm-bench-events-"));
  onTeardown(`remove ${dataDir}`, () => rm(dataDir, { recursive: true, force: true }));
  const url = target === "postgres" ? await createDatabase("tm_bench_events") : undefined;
  const server = await ServerChild.start(TARGET_LABEL[target], "./events-server.ts", {
    core: SERVER_CORE,
    nodeArgs: ["--expose-gc", ...(shared.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${shared.cpuProf}`] : [])],
    env: serviceEnv({ dataDir, url, admin }),
  });
  onTeardown(`stop ${server.name}`, () => server.stop());
  const adminToken = await login(server.url, admin);
  const client = await provisionClient(server.url, admin);
  return { target, server, wsUrl: `${server.url.replace(/^http/, "ws")}/graphql`, adminToken, client };
}

async function startHelper(
  name: string,
  script: string,
  core: number,
  profile = false,
): Promise<ServerChild> {
  const child = await ServerChild.start(name, script, {
    core,
    nodeArgs: profile && shared.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${shared.cpuProf}`] : [],
    env: { PATH: env.PATH, HOME: env.HOME, NODE_ENV: "production" },
  });
  onTeardown(`stop ${name}`, () => child.stop());
  return child;
}

const serverCall = <M extends keyof EventsServerApi & string>(
  ours: Ours,
  method: M,
  args: Args<EventsServerApi, M>,
  timeoutMs?: number,
) => call<EventsServerApi, M>(ours.server.child, method, args, timeoutMs);

async function sql<T = Record<string, unknown>>(ours: Ours, text: string, params: unknown[] = []) {
  return (await serverCall(ours, "sql", { text, params }, 600_000)) as T[];
}

async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 200,
): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; ; ) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Opens `count` console subscriptions and waits until the server's hub holds them all. */
async function subscribe(ours: Ours, clients: ServerChild, count: number, query = CONSOLE_SELECTION) {
  const ms = await call<EventsClientsApi, "openGraphql">(
    clients.child,
    "openGraphql",
    { url: ours.wsUrl, token: ours.adminToken, query, count, concurrency: 16 },
    600_000,
  );
  await waitUntil(
    `${count} subscriptions on ${ours.server.name}`,
    async () => (await serverCall(ours, "subscribers", {})) >= count,
    60_000,
  );
  return ms;
}

async function closeAll(clients: ServerChild, ours?: Ours): Promise<void> {
  await call<EventsClientsApi, "closeAll">(clients.child, "closeAll", {}, 60_000);
  if (ours)
    await waitUntil(
      `subscriptions to end on ${ours.server.name}`,
      async () => (await serverCall(ours, "subscribers", {})) === 0,
      60_000,
    );
}

type Stats = Awaited<ReturnType<EventsClientsApi["stats"]>>;
const stats = (clients: ServerChild) => call<EventsClientsApi, "stats">(clients.child, "stats", {});
const reset = (clients: ServerChild, mode: "count" | "latency", capture = false) =>
  call<EventsClientsApi, "reset">(clients.child, "reset", { mode, capture });

/** Waits until `expected` deliveries arrived, or nothing arrived for `idleMs`. */
async function deliveries(clients: ServerChild, expected: number, idleMs = 10_000): Promise<Stats> {
  let last = await stats(clients);
  let progressAt = Date.now();
  while (last.total < expected) {
    await sleep(100);
    const next = await stats(clients);
    if (next.total !== last.total) progressAt = Date.now();
    else if (Date.now() - progressAt > idleMs) return next;
    last = next;
  }
  return last;
}

function checkStats(label: string, st: Stats, expected: number, perSocket: number): void {
  if (st.total !== expected || st.perSocketMin !== perSocket || st.perSocketMax !== perSocket)
    problems.push(
      `${label}: ${st.total} deliveries of ${expected} expected (per socket ${st.perSocketMin}–${st.perSocketMax}, ${perSocket} expected)`,
    );
  if (st.others > 0 || st.closed > 0)
    problems.push(
      `${label}: ${st.others} unexpected messages (${st.otherSamples.join(" | ")}), ${st.closed} sockets closed ${JSON.stringify(st.closeCodes)}`,
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Fan-out throughput.

async function fanoutOurs(
  ours: Ours,
  clients: ServerChild,
  producer: ServerChild,
  capture: boolean,
): Promise<{ rounds: FanoutRound[]; payloads: string[] }> {
  const { subscribers, events, warmup, rounds, concurrency } = s.fanout;
  const label = `${TARGET_LABEL[ours.target]}, fan-out`;
  const openMs = await subscribe(ours, clients, subscribers);
  log(`${label}: ${subscribers} subscriptions open in ${(openMs / 1000).toFixed(1)} s`);
  const burst = (count: number) =>
    call<ProducerApi, "burst">(
      producer.child,
      "burst",
      { url: ours.server.url, ...ours.client, count, concurrency },
      600_000,
    );
  await reset(clients, "count");
  await burst(warmup);
  checkStats(
    `${label} (warm-up)`,
    await deliveries(clients, warmup * subscribers),
    warmup * subscribers,
    warmup,
  );
  const results: FanoutRound[] = [];
  let payloads: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    await quiet(`${label}, round ${round}`);
    await reset(clients, "count", capture && round === 1);
    const cpu = cpuWindow({
      server: ours.server.child.pid,
      clients: clients.child.pid,
      producer: producer.child.pid,
    });
    const produced = await burst(events);
    const st = await deliveries(clients, produced.ok * subscribers);
    const share = cpu();
    if (produced.ok !== events || produced.failed > 0)
      problems.push(
        `${label}, round ${round}: ${produced.ok} of ${events} POST /token answered 200 (${JSON.stringify(produced.statuses)}, ${produced.failed} failed)`,
      );
    checkStats(`${label}, round ${round}`, st, produced.ok * subscribers, produced.ok);
    if (capture && round === 1)
      payloads = await call<EventsClientsApi, "captured">(clients.child, "captured", {});
    const r: FanoutRound = {
      target: ours.target,
      round,
      subscribers,
      events: produced.ok,
      deliveries: st.total,
      seconds: (st.last - st.first) / 1000,
      commitSeconds: (produced.ended - produced.started) / 1000,
      cpu: share,
    };
    results.push(r);
    log(
      `${label}, round ${round}: ${r.deliveries} deliveries in ${r.seconds.toFixed(2)} s = ${Math.round(r.deliveries / r.seconds)}/s (${Math.round(r.events / r.commitSeconds)} events/s committed)`,
    );
  }
  await closeAll(clients, ours);
  return { rounds: results, payloads };
}

async function fanoutRaw(clients: ServerChild, payloads: string[]): Promise<FanoutRound[]> {
  const { subscribers, warmup, rounds } = s.fanout;
  const label = "raw ws, fan-out";
  const raw = await startHelper("raw ws server", "./events-raw-server.ts", SERVER_CORE, true);
  try {
    await call<EventsClientsApi, "openRaw">(
      clients.child,
      "openRaw",
      { url: raw.url.replace(/^http/, "ws"), count: subscribers, concurrency: 16 },
      600_000,
    );
    await waitUntil(
      "raw clients",
      async () => (await call<RawServerApi, "clients">(raw.child, "clients", {})) >= subscribers,
      60_000,
    );
    const broadcast = (p: string[]) =>
      call<RawServerApi, "broadcast">(raw.child, "broadcast", { payloads: p }, 600_000);
    const warm = payloads.slice(0, warmup);
    await reset(clients, "count");
    await broadcast(warm);
    checkStats(
      `${label} (warm-up)`,
      await deliveries(clients, warm.length * subscribers),
      warm.length * subscribers,
      warm.length,
    );
    const results: FanoutRound[] = [];
    for (let round = 1; round <= rounds; round++) {
      await quiet(`${label}, round ${round}`);
      await reset(clients, "count");
      const cpu = cpuWindow({ server: raw.child.pid, clients: clients.child.pid });
      const ms = await broadcast(payloads);
      const st = await deliveries(clients, payloads.length * subscribers);
      const share = cpu();
      checkStats(`${label}, round ${round}`, st, payloads.length * subscribers, payloads.length);
      const r: FanoutRound = {
        target: "raw",
        round,
        subscribers,
        events: payloads.length,
        deliveries: st.total,
        seconds: (st.last - st.first) / 1000,
        commitSeconds: ms / 1000,
        cpu: share,
      };
      results.push(r);
      log(
        `${label}, round ${round}: ${r.deliveries} deliveries in ${r.seconds.toFixed(2)} s = ${Math.round(r.deliveries / r.seconds)}/s`,
      );
    }
    await closeAll(clients);
    return results;
  } finally {
    await raw.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// 2. Memory per idle subscriber, then delivery latency at a steady rate.

async function memoryAndLatency(
  ours: Ours,
  clients: ServerChild,
  producer: ServerChild,
): Promise<{ memory: MemoryResult; latency?: LatencyResult }> {
  const { subscribers, rate, duration } = s.latency;
  const label = `${TARGET_LABEL[ours.target]}, latency`;
  // Code paths, caches and allocator pages that a first wave of subscriptions leaves behind are
  // not what idle subscribers hold: open and close as many once, then measure.
  await subscribe(ours, clients, subscribers);
  await closeAll(clients, ours);
  const heap = env.BENCH_EVENTS_HEAP;
  if (heap)
    await serverCall(ours, "heapSnapshot", { path: `${heap}-${ours.target}-before.heapsnapshot` }, 300_000);
  const before = await serverCall(ours, "memory", {});
  const openMs = await subscribe(ours, clients, subscribers);
  await sleep(2_000);
  const after = await serverCall(ours, "memory", {});
  if (heap)
    await serverCall(ours, "heapSnapshot", { path: `${heap}-${ours.target}-after.heapsnapshot` }, 300_000);
  if (!after.gc)
    warnings.push(`${label}: the server ran without --expose-gc: memory figures include garbage`);
  const memory: MemoryResult = {
    target: ours.target,
    subscribers,
    before,
    after,
    openSeconds: openMs / 1000,
  };
  log(
    `${label}: ${subscribers} idle subscriptions: RSS +${Math.round((after.rss - before.rss) / subscribers)} B, heap +${Math.round((after.heapUsed - before.heapUsed) / subscribers)} B per subscriber`,
  );
  if (!s.cases.includes("latency")) {
    await closeAll(clients, ours);
    return { memory };
  }
  // A few events first, at the same rate: the first deliveries of a fresh server compile code.
  await reset(clients, "count");
  const warm = await call<ProducerApi, "paced">(
    producer.child,
    "paced",
    { url: ours.server.url, ...ours.client, rate, seconds: s.latency.warmup },
    (s.latency.warmup + 120) * 1000,
  );
  await deliveries(clients, warm.length * subscribers);
  await quiet(label);
  await reset(clients, "latency");
  const cpu = cpuWindow({
    server: ours.server.child.pid,
    clients: clients.child.pid,
    producer: producer.child.pid,
  });
  const requests = await call<ProducerApi, "paced">(
    producer.child,
    "paced",
    { url: ours.server.url, ...ours.client, rate, seconds: duration },
    (duration + 120) * 1000,
  );
  const ok = requests.filter((r) => r.status === 200);
  const st = await deliveries(clients, ok.length * subscribers);
  const share = cpu();
  checkStats(label, st, ok.length * subscribers, ok.length);
  if (ok.length !== requests.length)
    problems.push(`${label}: ${requests.length - ok.length} of ${requests.length} POST /token failed`);
  const events = (await call<EventsClientsApi, "latency">(clients.child, "latency", {}, 120_000)).sort(
    (a, b) => Number(BigInt(a.id) - BigInt(b.id)),
  );
  // One request at a time: the k-th event is the k-th request's (each is checked to lie inside it).
  const afterResponse: number[] = [];
  const afterOccurred: number[] = [];
  const lastPerEvent: number[] = [];
  // BENCH_EVENTS_DUMP=<path prefix>: per-event times as JSON, for diagnosis.
  const dump: object[] | undefined = env.BENCH_EVENTS_DUMP ? [] : undefined;
  let mismatched = 0;
  events.forEach((event, k) => {
    const request = ok[k];
    if (!request || event.type !== "ISSUED") {
      mismatched += 1;
      return;
    }
    // occurredAt is the transaction's start (ms precision): between sending and the response.
    if (event.occurredAt < request.sent - 5 || event.occurredAt > request.responded + 5) mismatched += 1;
    let lastDelivery = 0;
    for (const t of event.times) {
      afterResponse.push(t - request.responded);
      afterOccurred.push(t - event.occurredAt);
      lastDelivery = Math.max(lastDelivery, t);
    }
    lastPerEvent.push(lastDelivery - request.responded);
    dump?.push({
      k,
      sent: request.sent,
      responded: request.responded,
      occurredAt: event.occurredAt,
      first: Math.min(...event.times),
      last: lastDelivery,
    });
  });
  if (dump) await writeFile(`${env.BENCH_EVENTS_DUMP}-${ours.target}.json`, JSON.stringify(dump));
  if (events.length !== ok.length || mismatched > 0)
    problems.push(
      `${label}: ${events.length} events for ${ok.length} requests, ${mismatched} not matching their request`,
    );
  const latency: LatencyResult = {
    target: ours.target,
    subscribers,
    rate,
    duration,
    events: events.length,
    deliveries: st.total,
    afterResponse: summary(afterResponse),
    afterOccurred: summary(afterOccurred),
    lastSubscriber: summary(lastPerEvent),
    requestMs: summary(ok.map((r) => r.responded - r.sent)),
    cpu: share,
  };
  log(
    `${label}: p50 ${latency.afterResponse.p50.toFixed(1)} ms, p99 ${latency.afterResponse.p99.toFixed(1)} ms, max ${latency.afterResponse.max.toFixed(1)} ms after the response (${st.total} deliveries)`,
  );
  await closeAll(clients, ours);
  return { memory, latency };
}

function summary(values: number[]) {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

// ---------------------------------------------------------------------------------------------
// 3. Expiry.

async function expiry(ours: Ours, clients: ServerChild): Promise<ExpiryResult> {
  const { tokens, window, lead } = s.expiry;
  const label = `${TARGET_LABEL[ours.target]}, expiry`;
  const [key] = await sql<{ id: string; application_id: string }>(
    ours,
    "select id, application_id from application_keys where consumer_key = $1",
    [ours.client.clientId],
  );
  if (!key) throw new Error(`${label}: the provisioned key is missing`);
  const watched = env.BENCH_EXPIRY_SUBSCRIBER !== "0";
  if (watched) await subscribe(ours, clients, 1, EXPIRED_SELECTION);
  await quiet(label);
  await reset(clients, "latency");
  const cpu = cpuWindow({ server: ours.server.child.pid, clients: clients.child.pid });
  const insertStarted = performance.now();
  // Valid rows as the token writer makes them (src/db/schema/token.ts), for the provisioned key;
  // issued now, so no EXPIRING_SOON warning is due (they live less than EXPIRING_SOON_WARNING).
  await sql(
    ours,
    `insert into access_tokens (id, user_store_domain, kind, format, client_id, application_id,
       application_key_id, key_type, scopes, token_hash, issued_at, expires_at)
     select gen_random_uuid(), 'PRIMARY', 'APPLICATION', 'OPAQUE', $1, $2::uuid, $3::uuid, 'PRODUCTION',
       '{bench}', 'bench-expiry-' || i || '-' || md5(random()::text), now(),
       now() + make_interval(secs => $4::float8 + $5::float8 * i / $6::float8)
     from generate_series(1, $6::int) as i`,
    [ours.client.clientId, key.application_id, key.id, lead, window, tokens],
  );
  const insertSeconds = (performance.now() - insertStarted) / 1000;
  const [span] = await sql<{ first: number; last: number; now: number }>(
    ours,
    `select extract(epoch from min(expires_at)) * 1000 as first, extract(epoch from max(expires_at)) * 1000 as last,
       extract(epoch from clock_timestamp()) * 1000 as now from access_tokens where token_hash like 'bench-expiry-%'`,
  );
  const first = Number(span?.first);
  const last = Number(span?.last);
  if (Number(span?.now) > first)
    warnings.push(
      `${label}: the insert took ${insertSeconds.toFixed(1)} s, longer than BENCH_EXPIRY_LEAD (${lead} s): early expiries waited for it`,
    );
  log(`${label}: ${tokens} tokens inserted in ${insertSeconds.toFixed(1)} s, expiring over ${window} s`);
  await sleep(Math.max(0, last - Date.now()));
  await waitUntil(
    `${label}: every token announced`,
    async () => {
      const [row] = await sql<{ n: number }>(
        ours,
        // The sweeper's own partial index: cheap enough not to slow it down.
        `select count(*)::int as n from access_tokens where expired_notified_at is null and revoked_at is null
           and expires_at <= to_timestamp($1::float8 / 1000)`,
        [last],
      );
      return Number(row?.n) === 0;
    },
    300_000,
    1_000,
  );
  const st = watched ? await deliveries(clients, tokens, 5_000) : await stats(clients);
  const share = cpu();
  const [lag] = await sql<{ n: number; tokens: number; p50: number; p99: number; max: number }>(
    ours,
    `select count(*)::int as n, count(distinct e.token_id)::int as tokens,
       percentile_cont(0.5) within group (order by lag) * 1000 as p50,
       percentile_cont(0.99) within group (order by lag) * 1000 as p99, max(lag) * 1000 as max
     from (select e.token_id, extract(epoch from e.occurred_at - t.expires_at) as lag
           from token_events e join access_tokens t on t.id = e.token_id
           where e.type = 'EXPIRED' and t.token_hash like 'bench-expiry-%') e`,
  );
  const n = Number(lag?.n);
  if (n !== tokens || Number(lag?.tokens) !== tokens)
    problems.push(
      `${label}: ${n} EXPIRED events for ${lag?.tokens} distinct tokens, ${tokens} expected exactly once`,
    );
  const delivered = await call<EventsClientsApi, "latency">(clients.child, "latency", {}, 120_000);
  const deliveryLag = delivered.flatMap((e) =>
    e.expiresAt === null ? [] : e.times.map((t) => t - (e.expiresAt as number)),
  );
  if (watched && (st.total !== tokens || st.closed > 0))
    problems.push(
      `${label}: the subscriber got ${st.total} of ${tokens} EXPIRED events (${st.closed} closes ${JSON.stringify(st.closeCodes)})`,
    );
  if (watched) await closeAll(clients, ours);
  const result: ExpiryResult = {
    target: ours.target,
    tokens,
    window,
    lead,
    insertSeconds,
    events: n,
    distinctTokens: Number(lag?.tokens),
    lag: { n, p50: Number(lag?.p50), p99: Number(lag?.p99), max: Number(lag?.max) },
    delivery: summary(deliveryLag),
    delivered: st.total,
    cpu: share,
  };
  log(
    `${label}: occurred_at − expires_at p50 ${result.lag.p50.toFixed(0)} ms, p99 ${result.lag.p99.toFixed(0)} ms, max ${result.lag.max.toFixed(0)} ms; delivery p99 ${result.delivery.p99.toFixed(0)} ms`,
  );
  return result;
}

// ---------------------------------------------------------------------------------------------

/** Runs the suite and rewrites its section of BENCHMARKS.md. */
export async function runEventsSuite(measured: string): Promise<Findings> {
  const clients = await startHelper("subscribers", "./events-clients.ts", CLIENT_CORE);
  const producer = await startHelper("producer", "./events-producer.ts", CLIENT_CORE);
  const fanout: FanoutRound[] = [];
  const memory: MemoryResult[] = [];
  const latency: LatencyResult[] = [];
  const expiries: ExpiryResult[] = [];
  let payloads: string[] = [];
  const wantsFanout = s.cases.includes("fanout");
  const wantsLatency = s.cases.includes("latency");
  if (wantsFanout || wantsLatency) {
    for (const target of s.targets) {
      log(`starting ${TARGET_LABEL[target]} (fan-out, latency)…`);
      const ours = await startOurs(target);
      try {
        if (wantsLatency) {
          const r = await memoryAndLatency(ours, clients, producer);
          memory.push(r.memory);
          if (r.latency) latency.push(r.latency);
        }
        if (wantsFanout) {
          const r = await fanoutOurs(ours, clients, producer, payloads.length === 0);
          fanout.push(...r.rounds);
          if (payloads.length === 0) payloads = r.payloads;
        }
      } finally {
        await ours.server.stop();
      }
    }
    if (wantsFanout && payloads.length > 0) fanout.push(...(await fanoutRaw(clients, payloads)));
  }
  if (s.cases.includes("expiry")) {
    for (const target of s.expiryTargets) {
      log(`starting ${TARGET_LABEL[target]} (expiry)…`);
      const ours = await startOurs(target);
      try {
        expiries.push(await expiry(ours, clients));
      } finally {
        await ours.server.stop();
      }
    }
  }
  await clients.stop();
  await producer.stop();
  const usesPostgres = [...s.targets, ...s.expiryTargets].includes("postgres");
  const section = renderEventsSection({
    command: commandLine(env),
    revision: measured,
    date: `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    machine: `${availableParallelism()} cores (${cpus()[0]?.model.trim() ?? "unknown CPU"}), Node ${process.version}, ${usesPostgres ? await postgresVersion(s.databaseUrl) : "PostgreSQL not used"}`,
    pinning,
    settings: s,
    fanout,
    payloadBytes: payloads.length
      ? payloads.reduce((n, p) => n + Buffer.byteLength(p), 0) / payloads.length
      : 0,
    memory,
    latency,
    expiry: expiries,
    problems,
    warnings,
  });
  await writeSection(s.output, section, "events");
  log(`\nwrote the events section of ${s.output}`);
  return findings;
}
