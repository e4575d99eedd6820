import { readFile, writeFile } from "node:fs/promises";
import type { CpuUse } from "./cpu.js";
import type { LoadResult } from "./load.js";

export type Target = "oidc-provider" | "pglite" | "postgres";

export const TARGET_LABEL: Record<Target, string> = {
  "oidc-provider": "oidc-provider (in-memory)",
  pglite: "ours, PGlite",
  postgres: "ours, PostgreSQL",
};

/** What a measured case persisted, read back through the server's own database connection. */
export interface Persistence {
  /** access_tokens rows added during the measured run. */
  readonly rows: number;
  /** ISSUED token events added during the measured run. */
  readonly events: number;
  /** SQL statements drizzle sent per token (BEGIN/COMMIT are not among them). */
  readonly statementsPerToken: number;
  /** Every 2xx has its row; rows beyond the 2xx are requests still in flight when the load stopped. */
  readonly ok: boolean;
}

export interface CaseResult {
  readonly target: Target;
  readonly connections: number;
  readonly load: LoadResult;
  readonly persistence?: Persistence;
  /** CPU use during the measured run (Linux only). */
  readonly cpu?: CpuUse | undefined;
  /** requests/s of every round of this case, in the order run (see medianRounds). */
  readonly rounds?: readonly number[];
}

export interface Meta {
  readonly command: string;
  readonly revision: string;
  readonly date: string;
  readonly nproc: number;
  readonly cpu: string;
  readonly node: string;
  readonly postgres: string;
  readonly oidcProvider: string;
  readonly autocannon: string;
  readonly warmup: number;
  readonly duration: number;
  /** Rounds per case (BENCH_ROUNDS). */
  readonly rounds: number;
  readonly pinning: boolean;
  /** access_tokens rows read again after each server stopped, by reopening its database. */
  readonly reopened: Partial<Record<Target, { rows: number; expected: number }>>;
  /** Failed checks. */
  readonly problems: readonly string[];
  /** What made the figures noisy (a busy machine). */
  readonly warnings: readonly string[];
}

/** How a suite's cases were measured, for its section's header. */
export const ROUNDS_TEXT = ({ rounds }: { readonly rounds: number }) =>
  rounds === 1
    ? "one round"
    : `${rounds} rounds (every server of the suite measured once per round, in turn; the figures are each case's round of median requests/s)`;

/** The markers around a suite's section of BENCHMARKS.md. */
export const markers = (suite: string) => ({
  start: `<!-- bench:${suite} -->`,
  end: `<!-- /bench:${suite} -->`,
});

const { start: START, end: END } = markers("token");

export const ms = (v: number) => (v >= 10 ? v.toFixed(0) : v.toFixed(1));
export const rps = (v: number) => Math.round(v).toLocaleString("en-US");

/**
 * Each case measured in several rounds (the servers alternate within a round), reduced to its
 * round of median requests/s (the lower middle of an even count), which keeps every round's
 * rate: one noisy round on a shared machine moves neither the figure nor the ratio.
 */
export function medianRounds<T extends { readonly load: LoadResult }>(
  results: readonly T[],
  key: (result: T) => string,
): (T & { readonly rounds: readonly number[] })[] {
  const cases = new Map<string, T[]>();
  for (const result of results) {
    const k = key(result);
    cases.set(k, [...(cases.get(k) ?? []), result]);
  }
  return [...cases.values()].map((rounds) => {
    const sorted = [...rounds].sort((a, b) => a.load.requestsPerSecond - b.load.requestsPerSecond);
    const median = sorted[Math.floor((sorted.length - 1) / 2)] as T;
    return { ...median, rounds: rounds.map((r) => r.load.requestsPerSecond) };
  });
}

/** The rounds cell: every round's requests/s, in the order run. */
export const roundsCell = (rounds: readonly number[] | undefined) =>
  rounds && rounds.length > 0 ? rounds.map(rps).join(" / ") : "—";

/**
 * Each round's ratio of `ours` to `base` (the cases of one round run a few seconds apart, so
 * they share the machine's speed of the moment, which can drift by half within a run on a
 * shared host), and their median; undefined unless both have the same rounds.
 */
export function pairedRounds(
  ours: readonly number[] | undefined,
  base: readonly number[] | undefined,
): { readonly each: number[]; readonly median: number } | undefined {
  if (!ours || !base || ours.length === 0 || ours.length !== base.length || base.includes(0))
    return undefined;
  const each = ours.map((v, i) => v / (base[i] as number));
  const sorted = [...each].sort((a, b) => a - b);
  return { each, median: sorted[Math.floor((sorted.length - 1) / 2)] as number };
}

/** The median of some figures (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** The ratio of ours to the peer at the same connection count. */
export function ratio(
  results: readonly CaseResult[],
  target: Target,
  connections: number,
): number | undefined {
  const ours = results.find((r) => r.target === target && r.connections === connections);
  const peer = results.find((r) => r.target === "oidc-provider" && r.connections === connections);
  if (!ours || !peer || peer.load.requestsPerSecond === 0) return undefined;
  return ours.load.requestsPerSecond / peer.load.requestsPerSecond;
}

function persistedCell(result: CaseResult): string {
  const p = result.persistence;
  if (!p) return "nothing (memory)";
  const inFlight = p.rows - result.load.ok;
  const extra = inFlight > 0 ? ` (+${inFlight} in flight at stop)` : "";
  return `${p.ok ? "✓" : "✗"} ${p.rows.toLocaleString("en-US")} rows${extra}`;
}

/** The token benchmark's section of BENCHMARKS.md, markers included. */
export function renderSection(results: readonly CaseResult[], meta: Meta): string {
  const rows = results.map((r) => {
    const failures = r.load.non2xx + r.load.errors + r.load.timeouts;
    const versus = ratio(results, r.target, r.connections);
    const x = r.target === "oidc-provider" ? "1.00x" : versus === undefined ? "—" : `${versus.toFixed(2)}x`;
    return `| ${TARGET_LABEL[r.target]} | ${r.connections} | ${rps(r.load.requestsPerSecond)} | ${roundsCell(r.rounds)} | ${ms(r.load.p50)} | ${ms(r.load.p99)} | ${x} | ${r.load.ok.toLocaleString("en-US")} | ${failures} |`;
  });
  const checks = results.map((r) => {
    const c = r.cpu;
    const pct = (v: number | undefined) => (v === undefined ? "—" : `${Math.round(v)}%`);
    const perRequest =
      c && r.load.requestsPerSecond > 0
        ? Math.round((c.server * 10_000) / r.load.requestsPerSecond)
        : undefined;
    return `| ${TARGET_LABEL[r.target]} | ${r.connections} | ${persistedCell(r)} | ${r.persistence ? r.persistence.statementsPerToken.toFixed(1) : "—"} | ${pct(c?.server)} | ${perRequest ?? "—"} | ${pct(c?.postgres)} | ${pct(c?.loadGenerator)} | ${pct(c?.other)} |`;
  });
  const connections = [...new Set(results.map((r) => r.connections))];
  const ratios = (["pglite", "postgres"] as const).flatMap((target) =>
    connections.flatMap((c) => {
      const x = ratio(results, target, c);
      return x === undefined ? [] : [`${TARGET_LABEL[target]} at ${c} connections: **${x.toFixed(2)}x**`];
    }),
  );
  const reopened = Object.entries(meta.reopened).map(
    ([target, r]) =>
      `${TARGET_LABEL[target as Target]}: ${r.rows.toLocaleString("en-US")} access_tokens rows after restart (expected ${r.expected.toLocaleString("en-US")})`,
  );
  return `${START}
## POST /token, client_credentials

Command: \`${meta.command}\` — run on ${meta.date}, at ${meta.revision}.
Machine: ${meta.nproc} cores (${meta.cpu}), Node ${meta.node}, ${meta.postgres}; peer oidc-provider ${meta.oidcProvider}; load generator autocannon ${meta.autocannon}.
Each case: ${ROUNDS_TEXT(meta)}; each measurement ${meta.warmup} s warm-up, then ${meta.duration} s measured, keep-alive connections, one request shape: \`POST /token\` with HTTP Basic client authentication and \`grant_type=client_credentials\`.
${meta.pinning ? "The server under test runs on core 0 (`taskset -c 0`), autocannon on core 1; PostgreSQL itself is not pinned." : "**`taskset` was not available: server and load generator were not pinned to cores.**"}

| server | connections | requests/s (median round) | every round, req/s | p50 ms | p99 ms | ours / oidc-provider | 2xx | non-2xx + errors |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
${rows.join("\n")}

Ratios (median requests/s, ours over oidc-provider at the same connection count; target ≥ 1.0x, stretch 1.5x):
${ratios.map((r) => `- ${r}`).join("\n") || "- (no peer in this run)"}

Checks and where the CPU went during each case's median round (CPU in % of one core; the machine has ${meta.nproc}):

| server | connections | persisted (checked) | SQL per token | server CPU | server CPU µs per request | PostgreSQL CPU | autocannon CPU | other programs |
| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |
${checks.join("\n")}

Durability check after the run (each server stopped, its database reopened): ${reopened.join("; ") || "not done"}.
${meta.problems.length > 0 ? `\n**Failed checks in this run:**\n${meta.problems.map((p) => `- ${p}`).join("\n")}\n` : ""}${meta.warnings.length > 0 ? `\nNoise warnings (other programs were using the CPU):\n${meta.warnings.map((p) => `- ${p}`).join("\n")}\n` : ""}
How to read it:
- The three servers are started side by side in one run and loaded one at a time, alternating per connection count, by the same load generator on the other core; compare rows of the same connection count.
- oidc-provider keeps its tokens in its development in-memory adapter (an LRU of 1,000 entries) and writes nothing; ours commits every token (its access_tokens row and its ISSUED event, atomically) before answering. "persisted" counts the access_tokens rows added during the measured run through the server's own database connection: every 2xx must have its row; a few more rows than 2xx are requests still in flight when autocannon stopped (at most one per connection).
- p50/p99 are autocannon's latency percentiles over the measured seconds; requests/s is the mean of its per-second samples.
- "SQL per token" counts the statements drizzle sends per issued token (BEGIN/COMMIT not included): below 1, tokens share statements (group commit: 0.1 is about ten tokens per batch).
- A server at ~100% CPU is CPU-bound (its µs per request is the cost to cut); well under 100% means it waits (for PostgreSQL, commits, or the pool). "other programs" is CPU used by anything the benchmark did not start: above a few % the figures are noisy (the harness waits up to BENCH_QUIET_WAIT seconds for a quiet machine before each case and lists a busy start under the noise warnings).
- Quick run: \`BENCH_WARMUP=1 BENCH_DURATION=3 BENCH_OUTPUT=/tmp/bench.md npm run bench\`; see bench/run.ts for every BENCH_* setting.
${END}`;
}

/**
 * Rewrites only one benchmark's section (between its markers, `suite` naming them) of `path`, so
 * that other benchmarks (token, gateway, event fan-out) keep their own sections.
 */
export async function writeSection(path: string, section: string, suite = "token"): Promise<void> {
  const { start: START, end: END } = markers(suite);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    text =
      "# Benchmarks\n\nEach section is written by its own harness; rerun the command it names to refresh it.\n";
  }
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  const next =
    start >= 0 && end > start
      ? `${text.slice(0, start)}${section}${text.slice(end + END.length)}`
      : `${text.trimEnd()}\n\n${section}\n`;
  await writeFile(path, next);
}
