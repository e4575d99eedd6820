/**
 * `npm run bench`: the benchmark suites, each writing its own section of BENCHMARKS.md.
 *
 * - token (bench/token-suite.ts): POST /token (client_credentials) on our service over PGlite
 *   and over PostgreSQL, against panva's oidc-provider.
 * - gateway (bench/gateway-suite.ts): GET /validate on a cached token against a bare node:http
 *   server answering a fixed 200 (and Fastify alone, for reference); POST /introspect with a
 *   different token on every request against oidc-provider's introspection.
 * - events (bench/events-run.ts): live token events: fan-out throughput to 1,000 GraphQL
 *   subscribers against a raw `ws` broadcast, delivery latency and memory with 2,000
 *   subscribers, and the lag of EXPIRED events behind 100,000 expiries.
 *
 * Every case runs at 16 and 64 connections. Everything runs on 127.0.0.1 and everything it
 * starts (servers, autocannon, the PostgreSQL databases, the PGlite directories) is stopped or
 * removed, on failure too, within a bounded time.
 *
 * Settings (environment):
 *   BENCH_SUITES        comma-separated subset of token,gateway,events (default all; the
 *                       events suite's own BENCH_FANOUT_*, BENCH_LATENCY_*, BENCH_EXPIRY_* and
 *                       BENCH_EVENTS_* settings are listed in bench/events-run.ts)
 *   BENCH_DURATION      measured seconds per case (default 10)
 *   BENCH_WARMUP        warm-up seconds per case (default 3)
 *   BENCH_ROUNDS        rounds of the token and gateway suites (default 3): every case is
 *                       measured once per round, and reported by its round of median requests/s
 *   BENCH_CONNECTIONS   comma-separated connection counts (default 16,64)
 *   BENCH_TARGETS       comma-separated subset of oidc-provider,pglite,postgres (default all; the
 *                       gateway suite's bare baselines always run)
 *   BENCH_INTROSPECT_TOKENS  distinct tokens each /introspect run rotates through (default
 *                       1000, the most oidc-provider's in-memory adapter holds)
 *   BENCH_GATEWAY_ENDPOINTS  comma-separated subset of validate,introspect: the gateway suite's
 *                       cases (default both; one alone is for diagnosis, e.g. with BENCH_CPU_PROF)
 *   BENCH_INTROSPECT_REFERENCES  1 (default) or 0: with /introspect, also measure two references, ours
 *                       without the database read and a bare node:http server writing the same
 *                       answer (see bench/gateway-suite.ts)
 *   BENCH_DATABASE_URL  PostgreSQL server to create the run's databases on, loopback only
 *                       (default postgres://postgres@127.0.0.1:5432/postgres)
 *   BENCH_OUTPUT        the Markdown file whose sections are rewritten (default BENCHMARKS.md)
 *   BENCH_QUIET_WAIT    seconds to wait, before each case, for other programs to leave the CPU
 *                       (under 25% of a core) (default 120; the report flags a busy machine)
 *   BENCH_CPU_PROF      a directory: run our servers with --cpu-prof into it (diagnosis only)
 */
import { pinning } from "./children.js";
import { eventsCaseCount, runEventsSuite } from "./events-run.js";
import { gatewayCaseCount, runGatewaySuite } from "./gateway-suite.js";
import { revision } from "./meta.js";
import { type Findings, log, settings } from "./settings.js";
import { guardRun, tearDown } from "./teardown.js";
import { runTokenSuite, tokenCaseCount } from "./token-suite.js";

const suites = {
  token: { cases: tokenCaseCount, run: runTokenSuite },
  gateway: { cases: gatewayCaseCount, run: runGatewaySuite },
  events: { cases: eventsCaseCount, run: runEventsSuite },
} as const;

const caseCount = settings.suites.reduce((n, suite) => n + suites[suite].cases(), 0);
guardRun(
  (caseCount * (settings.warmup + settings.duration + settings.quietWait + 45) +
    240 * settings.suites.length) *
    1000,
);

async function main(): Promise<number> {
  if (!pinning)
    log("note: taskset (util-linux) not found: server and load generator are not pinned to cores");
  // Read before the servers load the code: other people may be editing src/ meanwhile.
  const measured = revision();
  const found: Findings[] = [];
  for (const suite of settings.suites) {
    log(`\n== ${suite} suite ==`);
    found.push(await suites[suite].run(measured));
    // Each suite stops its servers; the teardown steps left (directories, databases) run at the end.
  }
  for (const findings of found) {
    for (const warning of findings.warnings) log(`warning: ${warning}`);
    for (const problem of findings.problems) log(`PROBLEM: ${problem}`);
  }
  return found.every((f) => f.problems.length === 0) ? 0 : 1;
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
