/**
 * `npm run bench`: POST /token (client_credentials) on our service over PGlite and over
 * PostgreSQL, against panva's oidc-provider, each at 16 and 64 connections; writes its section
 * of BENCHMARKS.md. Everything runs on 127.0.0.1 and everything it starts (servers, autocannon,
 * the PostgreSQL database, the PGlite directory) is stopped or removed, on failure too, within a
 * bounded time.
 *
 * Settings (environment):
 *   BENCH_DURATION      measured seconds per case (default 10)
 *   BENCH_WARMUP        warm-up seconds per case (default 3)
 *   BENCH_CONNECTIONS   comma-separated connection counts (default 16,64)
 *   BENCH_TARGETS       comma-separated subset of oidc-provider,pglite,postgres (default all)
 *   BENCH_DATABASE_URL  PostgreSQL server to create the run's database on, loopback only
 *                       (default postgres://postgres@127.0.0.1:5432/postgres)
 *   BENCH_OUTPUT        the Markdown file whose token section is rewritten (default BENCHMARKS.md)
 *   BENCH_QUIET_WAIT    seconds to wait, before each case, for other programs to leave the CPU
 *                       (under 25% of a core) (default 120; the report flags a busy machine)
 *   BENCH_CPU_PROF      a directory: run our servers with --cpu-prof into it (diagnosis only)
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { openDatabase } from "../src/db/client.js";
import { pinning, ROOT, ServerChild } from "./children.js";
import { startCpuWindow, waitForQuiet } from "./cpu.js";
import { AUTOCANNON_VERSION, checkOneRequest, runLoad, tokenRequest } from "./load.js";
import { commandLine, postgresVersion, revision } from "./meta.js";
import { provisionClient } from "./provision.js";
import {
  type CaseResult,
  type Meta,
  renderSection,
  TARGET_LABEL,
  type Target,
  writeSection,
} from "./report.js";
import { guardRun, onTeardown, tearDown } from "./teardown.js";

const SERVER_CORE = 0;
const LOAD_CORE = 1;

const env = process.env;
const settings = {
  duration: positive("BENCH_DURATION", 10),
  warmup: positive("BENCH_WARMUP", 3),
  connections: (env.BENCH_CONNECTIONS ?? "16,64").split(",").map((c) => Number.parseInt(c, 10)),
  targets: (env.BENCH_TARGETS ?? "oidc-provider,pglite,postgres").split(",") as Target[],
  databaseUrl: env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
  output: resolve(ROOT, env.BENCH_OUTPUT ?? "BENCHMARKS.md"),
  cpuProf: env.BENCH_CPU_PROF ? resolve(env.BENCH_CPU_PROF) : undefined,
  quietWait: positive("BENCH_QUIET_WAIT", 120),
};
/** % of one core: above it before a case, other programs would skew the figures. */
const QUIET_THRESHOLD = 25;

function positive(name: string, fallback: number): number {
  const value = env[name] === undefined ? fallback : Number(env[name]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number of seconds`);
  return value;
}

if (settings.connections.some((c) => !Number.isInteger(c) || c < 1)) {
  throw new Error("BENCH_CONNECTIONS must list positive integers");
}
if (settings.targets.some((t) => !(t in TARGET_LABEL))) {
  throw new Error(`BENCH_TARGETS must list some of ${Object.keys(TARGET_LABEL).join(", ")}`);
}
// Load and databases stay on this machine's loopback interface.
if (!["127.0.0.1", "localhost", "[::1]"].includes(new URL(settings.databaseUrl).hostname)) {
  throw new Error("BENCH_DATABASE_URL must point to a loopback address");
}

const caseCount = settings.targets.length * settings.connections.length;
guardRun((caseCount * (settings.warmup + settings.duration + settings.quietWait + 45) + 240) * 1000);

/** Failed checks (non-2xx, missing rows): the run exits 1. */
const problems: string[] = [];
/** Conditions that make the figures noisy without making them wrong. */
const warnings: string[] = [];
const log = (line: string) => process.stdout.write(`${line}\n`);

interface Running {
  readonly target: Target;
  readonly server: ServerChild;
  readonly request: ReturnType<typeof tokenRequest>;
  readonly database?: { dataDir?: string; url?: string };
}

/** Our service in a child process over a fresh database, with one provisioned client. */
async function startOurs(target: "pglite" | "postgres"): Promise<Running> {
  const admin = { username: "admin", password: randomBytes(18).toString("base64url") };
  const dataDir = await mkdtemp(join(tmpdir(), "tm-bench-"));
  onTeardown(`remove ${dataDir}`, () => rm(dataDir, { recursive: true, force: true }));
  let url: string | undefined;
  if (target === "postgres") url = await createDatabase();
  const server = await ServerChild.start(TARGET_LABEL[target], "./token-server.ts", {
    core: SERVER_CORE,
    nodeArgs: settings.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${settings.cpuProf}`] : [],
    // A clean environment: only what the benchmark means to set reaches the service.
    env: {
      PATH: env.PATH,
      HOME: env.HOME,
      NODE_ENV: "production",
      HOST: "127.0.0.1",
      PORT: "0",
      LOG_LEVEL: "warn",
      DATA_DIR: dataDir,
      ...(url ? { DATABASE_URL: url } : {}),
      ADMIN_USERNAME: admin.username,
      ADMIN_PASSWORD: admin.password,
      // Service secrets from the environment, as in production (no generated-secrets warning).
      TOKEN_HASH_KEY: randomBytes(32).toString("hex"),
      TOKEN_ENCRYPTION_KEYS: `bench:${randomBytes(32).toString("hex")}`,
    },
  });
  onTeardown(`stop ${server.name}`, () => server.stop());
  const client = await provisionClient(server.url, admin);
  return { target, server, request: tokenRequest(server.url, client), database: url ? { url } : { dataDir } };
}

/** A database of its own on the PostgreSQL server, dropped at the end. */
async function createDatabase(): Promise<string> {
  const name = `tm_bench_${randomBytes(6).toString("hex")}`;
  // Registered first: a signal arriving during the creation still drops it ("if exists").
  onTeardown(`drop database ${name}`, async () => {
    const sql = postgres(settings.databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
    try {
      await sql.unsafe(`drop database if exists ${name} with (force)`);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });
  const admin = postgres(settings.databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(settings.databaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function startPeer(): Promise<Running> {
  const client = { clientId: "bench-client", clientSecret: randomBytes(32).toString("hex") };
  const server = await ServerChild.start(TARGET_LABEL["oidc-provider"], "./oidc-provider-server.ts", {
    core: SERVER_CORE,
    env: {
      PATH: env.PATH,
      HOME: env.HOME,
      NODE_ENV: "production",
      BENCH_CLIENT_ID: client.clientId,
      BENCH_CLIENT_SECRET: client.clientSecret,
    },
  });
  onTeardown(`stop ${server.name}`, () => server.stop());
  return { target: "oidc-provider", server, request: tokenRequest(server.url, client) };
}

/** Warm-up, then the measured run; for ours, the rows each run added are checked against its 2xx. */
async function measure(running: Running, connections: number): Promise<CaseResult> {
  const ours = running.target !== "oidc-provider";
  const label = `${TARGET_LABEL[running.target]}, ${connections} connections`;
  const options = { connections, core: LOAD_CORE };
  const quietBefore = await waitForQuiet(QUIET_THRESHOLD, settings.quietWait * 1000);
  if (quietBefore !== undefined && quietBefore > QUIET_THRESHOLD) {
    warnings.push(`${label}: the machine was busy before the case (${Math.round(quietBefore)}% of a core)`);
  }
  const warm = await runLoad(running.request, { ...options, seconds: settings.warmup });
  checkLoad(`${label} (warm-up)`, warm);
  // Requests cut off when the warm-up stopped must finish before the measured run starts.
  const before = ours ? await settledCounts(running.server) : undefined;
  if (!ours) await sleep(1_000);
  const cpuWindow = startCpuWindow(running.server.child.pid);
  const load = await runLoad(running.request, { ...options, seconds: settings.duration });
  const cpu = cpuWindow();
  checkLoad(label, load);
  let persistence: CaseResult["persistence"];
  if (before) {
    const after = await settledCounts(running.server);
    const rows = after.accessTokens - before.accessTokens;
    const events = after.issuedEvents - before.issuedEvents;
    const ok = rows >= load.ok && rows <= load.ok + connections && events === rows;
    if (!ok)
      problems.push(`${label}: ${load.ok} 2xx but ${rows} access_tokens rows and ${events} ISSUED events`);
    persistence = { rows, events, ok, statementsPerToken: (after.statements - before.statements) / rows };
  }
  log(
    `${label.padEnd(44)} ${Math.round(load.requestsPerSecond).toString().padStart(6)} req/s  p50 ${load.p50} ms  p99 ${load.p99} ms` +
      (persistence ? `  rows ${persistence.rows} for ${load.ok} 2xx` : ""),
  );
  return { target: running.target, connections, load, persistence, cpu };
}

/**
 * Counts once the server is idle: requests cut off when autocannon stopped still finish (and
 * commit) on the server, so read until two reads 250 ms apart agree (at most 30 s).
 */
async function settledCounts(server: ServerChild) {
  let last = await server.counts();
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    await sleep(250);
    const next = await server.counts();
    if (next.accessTokens === last.accessTokens) return next;
    last = next;
  }
  throw new Error(`${server.name} kept writing tokens 30 s after the load stopped`);
}

function checkLoad(label: string, load: CaseResult["load"]): void {
  if (load.non2xx + load.errors + load.timeouts > 0) {
    problems.push(
      `${label}: ${load.non2xx} non-2xx (${JSON.stringify(load.statusCodes)}), ${load.errors} errors, ${load.timeouts} timeouts`,
    );
  }
}

/** Stops a server of ours and counts its rows again by reopening its database: they are on disk. */
async function reopenCount(running: Running): Promise<number> {
  await running.server.stop();
  const database = await openDatabase({
    databaseUrl: running.database?.url,
    dataDir: running.database?.dataDir ?? "",
  });
  try {
    const [row] = await database.raw<{ n: number }>("select count(*)::int as n from access_tokens");
    return Number(row?.n);
  } finally {
    await database.close();
  }
}

async function main(): Promise<number> {
  if (!pinning)
    log("note: taskset (util-linux) not found: server and load generator are not pinned to cores");
  const require = createRequire(import.meta.url);
  // Read before the servers load the code: other people may be editing src/ meanwhile.
  const measured = revision();
  const servers: Running[] = [];
  for (const target of settings.targets) {
    log(`starting ${TARGET_LABEL[target]}…`);
    const running = target === "oidc-provider" ? await startPeer() : await startOurs(target);
    await checkOneRequest(running.request);
    servers.push(running);
  }
  const results: CaseResult[] = [];
  for (const connections of settings.connections) {
    for (const running of servers) results.push(await measure(running, connections));
  }
  const reopened: Meta["reopened"] = {};
  for (const running of servers) {
    if (running.target === "oidc-provider") {
      await running.server.stop();
      continue;
    }
    const expected = (await running.server.counts()).accessTokens;
    const rows = await reopenCount(running);
    reopened[running.target] = { rows, expected };
    if (rows !== expected)
      problems.push(`${TARGET_LABEL[running.target]}: ${rows} rows after restart, ${expected} before`);
  }
  const meta: Meta = {
    command: commandLine(env),
    revision: measured,
    date: `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? "unknown CPU",
    node: process.version,
    postgres: settings.targets.includes("postgres")
      ? await postgresVersion(settings.databaseUrl)
      : "PostgreSQL not used",
    oidcProvider: (require("oidc-provider/package.json") as { version: string }).version,
    autocannon: AUTOCANNON_VERSION,
    warmup: settings.warmup,
    duration: settings.duration,
    pinning,
    reopened,
    problems,
    warnings,
  };
  await writeSection(settings.output, renderSection(results, meta));
  log(`\nwrote ${settings.output}`);
  for (const warning of warnings) log(`warning: ${warning}`);
  for (const problem of problems) log(`PROBLEM: ${problem}`);
  return problems.length === 0 ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
} finally {
  await tearDown();
}
process.exit(code);
