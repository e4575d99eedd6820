/**
 * The token suite: POST /token (client_credentials) on our service over PGlite and over
 * PostgreSQL, against panva's oidc-provider, each at every connection count; writes the
 * `<!-- bench:token -->` section of BENCHMARKS.md.
 */
import { createRequire } from "node:module";
import { availableParallelism, cpus } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { openDatabase } from "../src/db/client.js";
import { pinning, type ServerChild } from "./children.js";
import { startCpuWindow, waitForQuiet } from "./cpu.js";
import { AUTOCANNON_VERSION, checkOneRequest, runLoad, tokenRequest } from "./load.js";
import { commandLine, postgresVersion } from "./meta.js";
import {
  type CaseResult,
  type Meta,
  medianRounds,
  renderSection,
  TARGET_LABEL,
  type Target,
  writeSection,
} from "./report.js";
import { startOurs, startPeer } from "./servers.js";
import { Findings, LOAD_CORE, log, QUIET_THRESHOLD, settings } from "./settings.js";

interface Running {
  readonly target: Target;
  readonly server: ServerChild;
  readonly request: ReturnType<typeof tokenRequest>;
  readonly database?: { dataDir?: string; url?: string };
}

/** Cases this suite runs (for the harness's time budget). */
export const tokenCaseCount = () => settings.rounds * settings.targets.length * settings.connections.length;

/** Runs the suite and writes its section; `revision` is the commit measured. */
export async function runTokenSuite(revision: string): Promise<Findings> {
  const findings = new Findings();
  const servers: Running[] = [];
  for (const target of settings.targets) {
    log(`starting ${TARGET_LABEL[target]}…`);
    let running: Running;
    if (target === "oidc-provider") {
      const peer = await startPeer();
      running = { target, server: peer.server, request: tokenRequest(peer.server.url, peer.client) };
    } else {
      const ours = await startOurs(target);
      running = {
        target,
        server: ours.server,
        request: tokenRequest(ours.server.url, ours.client),
        database: ours.database,
      };
    }
    await checkOneRequest(running.request);
    servers.push(running);
  }
  const measured: CaseResult[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    if (settings.rounds > 1) log(`round ${round} of ${settings.rounds}`);
    for (const connections of settings.connections) {
      for (const running of servers) measured.push(await measure(running, connections, findings));
    }
  }
  const results = medianRounds(measured, (r) => `${r.target} ${r.connections}`);
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
      findings.problems.push(
        `${TARGET_LABEL[running.target]}: ${rows} rows after restart, ${expected} before`,
      );
  }
  const require = createRequire(import.meta.url);
  const meta: Meta = {
    command: commandLine(process.env),
    revision,
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
    rounds: settings.rounds,
    pinning,
    reopened,
    problems: findings.problems,
    warnings: findings.warnings,
  };
  await writeSection(settings.output, renderSection(results, meta), "token");
  log(`\nwrote the token section of ${settings.output}`);
  return findings;
}

/** Warm-up, then the measured run; for ours, the rows each run added are checked against its 2xx. */
async function measure(running: Running, connections: number, findings: Findings): Promise<CaseResult> {
  const ours = running.target !== "oidc-provider";
  const label = `${TARGET_LABEL[running.target]}, ${connections} connections`;
  const options = { connections, core: LOAD_CORE };
  const quietBefore = await waitForQuiet(QUIET_THRESHOLD, settings.quietWait * 1000);
  if (quietBefore !== undefined && quietBefore > QUIET_THRESHOLD) {
    findings.warnings.push(
      `${label}: the machine was busy before the case (${Math.round(quietBefore)}% of a core)`,
    );
  }
  const warm = await runLoad(running.request, { ...options, seconds: settings.warmup });
  checkLoad(`${label} (warm-up)`, warm, findings);
  // Requests cut off when the warm-up stopped must finish before the measured run starts.
  const before = ours ? await settledCounts(running.server) : undefined;
  if (!ours) await sleep(1_000);
  const cpuWindow = startCpuWindow(running.server.child.pid);
  const load = await runLoad(running.request, { ...options, seconds: settings.duration });
  const cpu = cpuWindow();
  checkLoad(label, load, findings);
  let persistence: CaseResult["persistence"];
  if (before) {
    const after = await settledCounts(running.server);
    const rows = after.accessTokens - before.accessTokens;
    const events = after.issuedEvents - before.issuedEvents;
    const ok = rows >= load.ok && rows <= load.ok + connections && events === rows;
    if (!ok)
      findings.problems.push(
        `${label}: ${load.ok} 2xx but ${rows} access_tokens rows and ${events} ISSUED events`,
      );
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
export async function settledCounts(server: ServerChild) {
  let last = await server.counts();
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; ) {
    await sleep(250);
    const next = await server.counts();
    if (next.accessTokens === last.accessTokens) return next;
    last = next;
  }
  throw new Error(`${server.name} kept writing tokens 30 s after the load stopped`);
}

export function checkLoad(label: string, load: CaseResult["load"], findings: Findings): void {
  if (load.non2xx + load.errors + load.timeouts > 0) {
    findings.problems.push(
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
