/**
 * `npm run bench:paired` (diagnosis, writes nothing): POST /introspect on several servers started
 * side by side and loaded in alternation, in short runs, so that each ratio compares two runs
 * a few seconds apart. On a shared virtual machine the speed of the cores drifts by up to 2x over
 * tens of seconds; the gateway suite's 10-second cases, each after a quiet wait and a warm-up,
 * compare runs up to a minute apart and their ratios swing with that drift. Here the order of the
 * servers is reversed every round, and the ratio of each run to the first server's run of the
 * same round is reported as a median over the rounds, with its range.
 *
 * Settings (environment):
 *   BENCH_PAIRED          comma-separated servers, the first being the one the others are compared
 *                         with (default oidc-provider,pglite,postgres): oidc-provider, pglite,
 *                         postgres, pglite-no-read (the reference of the gateway suite), or
 *                         pglite@<dir> / postgres@<dir> for our service from another checkout of
 *                         the repository (a change being measured; it needs its own node_modules,
 *                         a symbolic link to this one's will do)
 *   BENCH_PAIRED_SECONDS  seconds per run (default 3)
 *   BENCH_PAIRED_ROUNDS   rounds (default 10)
 *   BENCH_CONNECTIONS     the first count listed (default 16)
 * and BENCH_INTROSPECT_TOKENS, BENCH_DATABASE_URL as for `npm run bench`.
 */
import { startCpuWindow } from "./cpu.js";
import { introspected, PROVISION } from "./gateway-suite.js";
import { runWorkerLoad } from "./load.js";
import { median, pairedRounds } from "./report.js";
import { startOurs, startPeer } from "./servers.js";
import { LOAD_CORE, log, settings } from "./settings.js";
import { guardRun, tearDown } from "./teardown.js";

const env = process.env;
const seconds = Number(env.BENCH_PAIRED_SECONDS ?? 3);
const rounds = Number(env.BENCH_PAIRED_ROUNDS ?? 10);
const connections = settings.connections[0] ?? 16;
const entries = (env.BENCH_PAIRED ?? "oidc-provider,pglite,postgres")
  .split(",")
  .map((s) => s.trim())
  .filter((s) => s !== "");
if (!Number.isInteger(rounds) || rounds < 1)
  throw new Error("BENCH_PAIRED_ROUNDS must be a positive integer");
if (!(seconds >= 1)) throw new Error("BENCH_PAIRED_SECONDS must be at least 1");
if (entries.length < 2) throw new Error("BENCH_PAIRED must list at least two servers");

interface Run {
  readonly requestsPerSecond: number;
  /** The server's CPU time per request, µs (undefined without /proc). */
  readonly cpuPerRequest: number | undefined;
}

/** Starts one entry of BENCH_PAIRED, with its tokens minted and checked. */
async function start(entry: string) {
  if (entry === "oidc-provider") return introspected(entry, await startPeer(), "/token/introspection");
  if (entry === "pglite-no-read") {
    const running = await startOurs("pglite", PROVISION, entry, { BENCH_SKIP_TOKEN_READS: "1" });
    return introspected(entry, running, "/introspect");
  }
  const [target, checkout] = entry.split("@", 2) as [string, string | undefined];
  if (target !== "pglite" && target !== "postgres") throw new Error(`BENCH_PAIRED: unknown server ${entry}`);
  const running = await startOurs(target, PROVISION, entry, {}, checkout);
  return introspected(target, running, "/introspect");
}

const fixed = (value: number | undefined, digits: number) =>
  value === undefined ? "n/a" : value.toFixed(digits);

async function main(): Promise<void> {
  const servers = [];
  for (const entry of entries) {
    log(`starting ${entry}…`);
    servers.push({ entry, loaded: await start(entry), runs: [] as Run[] });
  }
  for (const { loaded } of servers) await runWorkerLoad({ ...loaded.spec, connections, seconds }, LOAD_CORE);
  for (let round = 1; round <= rounds; round++) {
    for (const server of round % 2 === 1 ? servers : [...servers].reverse()) {
      const cpu = startCpuWindow(server.loaded.server.child.pid);
      const started = performance.now();
      const load = await runWorkerLoad({ ...server.loaded.spec, connections, seconds }, LOAD_CORE);
      const used = cpu();
      const window = (performance.now() - started) / 1000;
      const served = load.ok + load.non2xx;
      if (load.non2xx > 0 || load.errors > 0)
        throw new Error(`${server.entry}: ${load.non2xx} non-2xx, ${load.errors} errors`);
      const cpuPerRequest = used && served > 0 ? (used.server * 1e4 * window) / served : undefined;
      server.runs.push({ requestsPerSecond: load.requestsPerSecond, cpuPerRequest });
      log(
        `round ${round} ${server.entry.padEnd(40)} ${Math.round(load.requestsPerSecond).toString().padStart(6)} req/s  ${fixed(cpuPerRequest, 1).padStart(6)} µs CPU/request`,
      );
    }
  }
  const first = servers[0]!;
  log(
    `\nPOST /introspect, ${connections} connections, ${rounds} rounds of ${seconds} s, ratios to ${first.entry}:`,
  );
  const rates = (runs: readonly Run[]) => runs.map((run) => run.requestsPerSecond);
  for (const server of servers) {
    // Undefined only when a run of the first server served nothing.
    const paired = pairedRounds(rates(server.runs), rates(first.runs));
    const ratio = paired
      ? `${paired.median.toFixed(2)} (${Math.min(...paired.each).toFixed(2)}–${Math.max(...paired.each).toFixed(2)})`
      : "n/a";
    const cpu = server.runs.map((run) => run.cpuPerRequest).filter((v) => v !== undefined);
    const rps = Math.round(median(rates(server.runs))).toString();
    log(
      `${server.entry.padEnd(40)} ${rps.padStart(6)} req/s  ${fixed(cpu.length ? median(cpu) : undefined, 1).padStart(6)} µs CPU/request  ratio ${ratio}`,
    );
  }
  for (const server of servers) await server.loaded.server.stop();
}

guardRun((entries.length * (rounds + 1) * (seconds + 5) + entries.length * 120) * 1000);
let code = 1;
try {
  await main();
  code = 0;
} catch (error) {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error);
} finally {
  await tearDown();
}
process.exit(code);
