import type { CpuUse } from "./cpu.js";
import type { LoadResult } from "./load.js";
import { markers, pairedRounds, ROUNDS_TEXT, roundsCell, rps } from "./report.js";

export type GatewayServer =
  | "bare"
  | "fastify"
  | "pglite"
  | "postgres"
  | "oidc-provider"
  | "pglite-no-read"
  | "bare-introspection";

export const GATEWAY_LABEL: Record<GatewayServer, string> = {
  bare: "bare node:http (fixed 200)",
  fastify: "bare Fastify (fixed 200, reference)",
  pglite: "ours, PGlite",
  postgres: "ours, PostgreSQL",
  "oidc-provider": "oidc-provider (in-memory)",
  "pglite-no-read": "reference: ours, PGlite, no database read",
  "bare-introspection": "reference: bare node:http (fixed introspection answer)",
};

/** The introspection references (BENCH_INTROSPECT_REFERENCES): measured for diagnosis, no target. */
const REFERENCES: readonly GatewayServer[] = ["pglite-no-read", "bare-introspection"];

export interface GatewayCase {
  readonly endpoint: "validate" | "introspect";
  readonly server: GatewayServer;
  readonly connections: number;
  readonly load: LoadResult;
  /** CPU use during the measured run (Linux only). */
  readonly cpu?: CpuUse | undefined;
  /** SQL statements drizzle sent per answered request (ours only). */
  readonly statementsPerRequest?: number | undefined;
  /** requests/s of every round of this case, in the order run (see medianRounds). */
  readonly rounds?: readonly number[];
}

export interface GatewayMeta {
  readonly command: string;
  readonly revision: string;
  readonly date: string;
  readonly nproc: number;
  readonly cpu: string;
  readonly node: string;
  readonly postgres: string;
  readonly oidcProvider: string;
  readonly fastify: string;
  readonly autocannon: string;
  readonly warmup: number;
  readonly duration: number;
  /** Rounds per case (BENCH_ROUNDS). */
  readonly rounds: number;
  /** How many distinct tokens each /introspect run rotates through. */
  readonly tokens: number;
  readonly originalUri: string;
  readonly pinning: boolean;
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
}

/** What each endpoint's figures are divided by, and the target for ours. */
const BASE = {
  validate: { server: "bare", target: 0.5, name: "bare node:http" },
  introspect: { server: "oidc-provider", target: 2, name: "oidc-provider" },
} as const;

/** The case `r` is compared with: its endpoint's base at the same connection count. */
const baseOf = (results: readonly GatewayCase[], r: GatewayCase) =>
  results.find(
    (b) =>
      b.endpoint === r.endpoint && b.server === BASE[r.endpoint].server && b.connections === r.connections,
  );

/** requests/s of `r` over its endpoint's base at the same connection count. */
export function gatewayRatio(results: readonly GatewayCase[], r: GatewayCase): number | undefined {
  const base = baseOf(results, r);
  if (!base || base.load.requestsPerSecond === 0) return undefined;
  return r.load.requestsPerSecond / base.load.requestsPerSecond;
}

/** autocannon records latency in whole milliseconds: 0 is under a millisecond. */
const ms = (v: number) => (v < 1 ? "< 1" : Math.round(v).toString());
const x = (v: number | undefined) => (v === undefined ? "—" : `${v.toFixed(2)}x`);

function table(results: readonly GatewayCase[], endpoint: GatewayCase["endpoint"]): string {
  const rows = results
    .filter((r) => r.endpoint === endpoint)
    .map((r) => {
      const failures = r.load.non2xx + r.load.errors + r.load.timeouts;
      const sql = r.statementsPerRequest === undefined ? "—" : r.statementsPerRequest.toFixed(2);
      return `| ${GATEWAY_LABEL[r.server]} | ${r.connections} | ${rps(r.load.requestsPerSecond)} | ${roundsCell(r.rounds)} | ${ms(r.load.p50)} | ${ms(r.load.p99)} | ${x(gatewayRatio(results, r))} | ${r.load.ok.toLocaleString("en-US")} | ${failures} | ${sql} |`;
    });
  return `| server | connections | requests/s (median round) | every round, req/s | p50 ms | p99 ms | / ${BASE[endpoint].name} | 2xx | non-2xx + errors | SQL per request |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}`;
}

function ratios(results: readonly GatewayCase[], endpoint: GatewayCase["endpoint"]): string {
  const { target, server } = BASE[endpoint];
  const lines = results
    .filter((r) => r.endpoint === endpoint && r.server !== server)
    .flatMap((r) => {
      const v = gatewayRatio(results, r);
      if (v === undefined) return [];
      const ours = r.server === "pglite" || r.server === "postgres";
      const verdict = ours ? (v >= target ? " (meets the target)" : " (**below the target**)") : "";
      const paired = pairedRounds(r.rounds, baseOf(results, r)?.rounds);
      const perRound =
        paired && paired.each.length > 1
          ? `; round by round ${paired.each.map((e) => `${e.toFixed(2)}x`).join(" / ")}, median ${paired.median.toFixed(2)}x`
          : "";
      return [
        `- ${GATEWAY_LABEL[r.server]} at ${r.connections} connections: **${v.toFixed(2)}x**${verdict}${perRound}`,
      ];
    });
  return lines.join("\n") || `- (no ${BASE[endpoint].name} in this run)`;
}

function cpuTable(results: readonly GatewayCase[]): string {
  const pct = (v: number | undefined) => (v === undefined ? "—" : `${Math.round(v)}%`);
  const rows = results.map((r) => {
    const c = r.cpu;
    const perRequest =
      c && r.load.requestsPerSecond > 0
        ? Math.round((c.server * 10_000) / r.load.requestsPerSecond)
        : undefined;
    const endpoint = r.endpoint === "validate" ? "GET /validate" : "POST /introspect";
    return `| ${endpoint} | ${GATEWAY_LABEL[r.server]} | ${r.connections} | ${pct(c?.server)} | ${perRequest ?? "—"} | ${pct(c?.postgres)} | ${pct(c?.loadGenerator)} | ${pct(c?.other)} |`;
  });
  return `| endpoint | server | connections | server CPU | server CPU µs per request | PostgreSQL CPU | autocannon CPU | other programs |
| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}`;
}

const REFERENCES_TEXT = `The two "reference" rows (\`BENCH_INTROSPECT_REFERENCES\`, on by default) are there to read the others by; no target applies to them:
- "${GATEWAY_LABEL["pglite-no-read"]}" is our service over PGlite doing everything an introspection does (the form, the client's authentication, the token's checksum and keyed hash, the answer) except the database read: each token is read once, by the check before the runs, and then answered from memory (bench/token-server.ts, \`BENCH_SKIP_TOKEN_READS\`). It is not an upper bound for ours: it answers each request as soon as it has read it, where ours answers a batch at a time (one database read for all the requests in flight), and answering one at a time can cost more per request: compare their CPU per request below.
- "${GATEWAY_LABEL["bare-introspection"]}" reads the same requests to their end and writes our answer for one of the tokens, byte for byte, with the same headers, and does nothing else: about what a Node server can serve of this request and answer here, unless autocannon's CPU below is near 100% (then the load generator is what limits it).`;

/** The gateway benchmark's section of BENCHMARKS.md, markers included. */
export function renderGatewaySection(results: readonly GatewayCase[], meta: GatewayMeta): string {
  const { start, end } = markers("gateway");
  const list = (items: readonly string[]) => items.map((p) => `- ${p}`).join("\n");
  return `${start}
## Gateway check (GET /validate) and introspection (POST /introspect)

Command: \`${meta.command}\` — run on ${meta.date}, at ${meta.revision}. This suite alone: \`BENCH_SUITES=gateway npm run bench\`.
Machine: ${meta.nproc} cores (${meta.cpu}), Node ${meta.node}, ${meta.postgres}; Fastify ${meta.fastify}; peer oidc-provider ${meta.oidcProvider}; load generator autocannon ${meta.autocannon} (through its API, load-worker.ts).
Each case: ${ROUNDS_TEXT(meta)}; each measurement ${meta.warmup} s warm-up, then ${meta.duration} s measured, keep-alive connections.
${meta.pinning ? "Every server under test runs on core 0 (`taskset -c 0`), autocannon on core 1; PostgreSQL itself is not pinned." : "**`taskset` was not available: server and load generator were not pinned to cores.**"}

### GET /validate on a cached token

Request: \`GET /validate\` with \`Authorization: Bearer <an active application token>\`, \`X-Original-URI: ${meta.originalUri}\` and \`X-Original-Method: GET\`. The token's application subscribes to the API \`/bench/1.0.0\`, whose resource \`GET /items/{id}\` requires the scope \`bench\`, which the token holds: the check parses the token, finds its grant in the validation cache, verifies the value's keyed hash, matches the API, the domain and the resource, checks the scope, and answers 200 with the \`x-auth-*\` identity headers. Before each case one request must answer exactly that (and the same token on an API it does not subscribe to, 403). The cache is warm: the warm-up loads the grant; "SQL per request" shows what reached the database during the measured run. The baselines receive the same request bytes and ignore them.

${table(results, "validate")}

Ratios (median requests/s over the bare node:http server at the same connection count; target ≥ ${BASE.validate.target}), then each round's ratio (the servers of a round run back to back, at the machine's speed of the moment) and their median:
${ratios(results, "validate")}

### POST /introspect on a cache miss

Request: \`POST\` to the introspection endpoint (ours \`/introspect\`, oidc-provider \`/token/introspection\`) with HTTP Basic client authentication and the body \`token=<value>\` (no \`token_type_hint\`), each server with its own set of ${meta.tokens.toLocaleString("en-US")} client_credentials access tokens minted beforehand by the same client. Request n of a run (all connections together) names token n mod ${meta.tokens.toLocaleString("en-US")}, so consecutive requests introspect different tokens. Ours keeps no introspection cache: every call reads the token (and its key and user) from the database and verifies the value's keyed hash; oidc-provider reads its in-memory adapter (an LRU of 1,000 entries, which holds every token of the set). Before the runs every token must introspect as \`active: true\` for that client, and again after every measured run: every 2xx counted was an active answer.

${table(results, "introspect")}

Ratios (median requests/s, ours over oidc-provider at the same connection count; target ≥ ${BASE.introspect.target}x), then each round's ratio and their median:
${ratios(results, "introspect")}
${results.some((r) => REFERENCES.includes(r.server)) ? `\n${REFERENCES_TEXT}\n` : ""}
### Where the CPU went during each case's median round

CPU in % of one core (the machine has ${meta.nproc}):

${cpuTable(results)}
${meta.problems.length > 0 ? `\n**Failed checks in this run:**\n${list(meta.problems)}\n` : ""}${meta.warnings.length > 0 ? `\nNoise warnings (other programs were using the CPU):\n${list(meta.warnings)}\n` : ""}
How to read it:
- All servers are started side by side in one run and loaded one at a time, alternating per connection count, by the same load generator on the other core; compare rows of the same connection count.
- p50/p99 are autocannon's latency percentiles over the measured seconds, in whole milliseconds ("< 1": under a millisecond); requests/s is the mean of its per-second samples.
- A server at ~100% CPU is CPU-bound: its µs per request is the cost to cut. When autocannon is near 100% too, the load generator limits the fastest servers (the bare baseline first), which understates their rate and flatters the ratios below them.
- "other programs" is CPU used by anything the benchmark did not start: above a few % the figures are noisy. The harness waits up to BENCH_QUIET_WAIT seconds for a quiet machine before each case, and measures a case again (twice at most) when other programs used more than 25% of a core during its run; what stayed noisy is listed under the noise warnings.
- Quick run: \`BENCH_SUITES=gateway BENCH_WARMUP=1 BENCH_DURATION=3 BENCH_OUTPUT=/tmp/bench.md npm run bench\`; see bench/run.ts for every BENCH_* setting.
${end}`;
}
