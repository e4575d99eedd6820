/**
 * The benchmark's settings, read once from the environment (every BENCH_* variable is listed in
 * bench/run.ts), and what every suite shares: the cores, the quiet-machine threshold, the log.
 */
import { resolve } from "node:path";
import { ROOT } from "./children.js";
import { TARGET_LABEL, type Target } from "./report.js";

export const SUITES = ["token", "gateway", "events"] as const;
export type Suite = (typeof SUITES)[number];

/** The server under test runs on this core… */
export const SERVER_CORE = 0;
/** …and the load generator on this one. */
export const LOAD_CORE = 1;
/** % of one core: above it before a case, other programs would skew the figures. */
export const QUIET_THRESHOLD = 25;

const env = process.env;

function positive(name: string, fallback: number): number {
  const value = env[name] === undefined ? fallback : Number(env[name]);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

function list(name: string, fallback: string): string[] {
  return (env[name] ?? fallback)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

export const settings = {
  suites: list("BENCH_SUITES", SUITES.join(",")) as Suite[],
  duration: positive("BENCH_DURATION", 10),
  rounds: positive("BENCH_ROUNDS", 3),
  warmup: positive("BENCH_WARMUP", 3),
  connections: list("BENCH_CONNECTIONS", "16,64").map((c) => Number(c)),
  targets: list("BENCH_TARGETS", "oidc-provider,pglite,postgres") as Target[],
  databaseUrl: env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres",
  output: resolve(ROOT, env.BENCH_OUTPUT ?? "BENCHMARKS.md"),
  cpuProf: env.BENCH_CPU_PROF ? resolve(env.BENCH_CPU_PROF) : undefined,
  quietWait: positive("BENCH_QUIET_WAIT", 120),
  introspectTokens: positive("BENCH_INTROSPECT_TOKENS", 1000),
  gatewayEndpoints: list("BENCH_GATEWAY_ENDPOINTS", "validate,introspect"),
  introspectReferences: (env.BENCH_INTROSPECT_REFERENCES ?? "1") !== "0",
};

if (settings.suites.length === 0 || settings.suites.some((s) => !SUITES.includes(s))) {
  throw new Error(`BENCH_SUITES must list some of ${SUITES.join(", ")}`);
}
if (
  settings.gatewayEndpoints.length === 0 ||
  settings.gatewayEndpoints.some((e) => e !== "validate" && e !== "introspect")
) {
  throw new Error("BENCH_GATEWAY_ENDPOINTS must list some of validate, introspect");
}
if (!Number.isInteger(settings.rounds)) throw new Error("BENCH_ROUNDS must be a positive integer");
if (settings.connections.some((c) => !Number.isInteger(c) || c < 1)) {
  throw new Error("BENCH_CONNECTIONS must list positive integers");
}
if (settings.targets.length === 0 || settings.targets.some((t) => !(t in TARGET_LABEL))) {
  throw new Error(`BENCH_TARGETS must list some of ${Object.keys(TARGET_LABEL).join(", ")}`);
}
// oidc-provider's in-memory adapter is an LRU of 1,000 entries: more tokens would evict some.
if (!Number.isInteger(settings.introspectTokens) || settings.introspectTokens > 1000) {
  throw new Error("BENCH_INTROSPECT_TOKENS must be an integer from 1 to 1000");
}
// Load and databases stay on this machine's loopback interface.
if (!["127.0.0.1", "localhost", "[::1]"].includes(new URL(settings.databaseUrl).hostname)) {
  throw new Error("BENCH_DATABASE_URL must point to a loopback address");
}

export const log = (line: string) => process.stdout.write(`${line}\n`);

/** What one suite found: failed checks make the run exit 1; warnings only flag noisy figures. */
export class Findings {
  /** Failed checks (non-2xx, missing rows, a wrong answer). */
  readonly problems: string[] = [];
  /** Conditions that make the figures noisy without making them wrong (a busy machine). */
  readonly warnings: string[] = [];
}
