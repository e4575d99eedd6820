/**
 * CPU accounting from /proc (Linux): who used the cores during a measured run — the server under
 * test, PostgreSQL, autocannon — and how much went to anything else on the machine, which makes
 * a run noisy. Elsewhere (no /proc) every figure is undefined and the report says so.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

const TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** CPU use over a window, each in % of one core (a 2-core machine goes up to 200). */
export interface CpuUse {
  readonly server: number;
  readonly postgres: number;
  readonly loadGenerator: number;
  /** Everything else on the machine: other programs make the run noisy. */
  readonly other: number;
}

interface Snapshot {
  readonly at: number;
  readonly busy: number;
  readonly server: number;
  readonly postgres: number;
  readonly children: number;
}

/** utime+stime (fields 14, 15) and, with `children`, cutime+cstime (16, 17) of a process. */
function processTicks(pid: number | "self", children = false): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const at = (n: number) => Number(fields[n - 3]);
    return children ? at(16) + at(17) : at(14) + at(15);
  } catch {
    return 0;
  }
}

function machineBusyTicks(): number {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const [, ...values] = line.trim().split(/\s+/).map(Number);
  // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
  const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
  return total - (values[3] ?? 0) - (values[4] ?? 0);
}

function postgresTicks(): number {
  let sum = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === "postgres")
        sum += processTicks(Number(entry));
    } catch {}
  }
  return sum;
}

function snapshot(serverPid: number | undefined): Snapshot {
  return {
    at: performance.now(),
    busy: machineBusyTicks(),
    server: serverPid ? processTicks(serverPid) : 0,
    postgres: postgresTicks(),
    // autocannon runs as a child of this process: its time lands here once it is reaped.
    children: processTicks("self", true),
  };
}

const available = (() => {
  try {
    machineBusyTicks();
    return true;
  } catch {
    return false;
  }
})();

/** Starts measuring; call the returned function once the run (and its load generator) ended. */
export function startCpuWindow(serverPid: number | undefined): () => CpuUse | undefined {
  if (!available) return () => undefined;
  const start = snapshot(serverPid);
  return () => {
    const end = snapshot(serverPid);
    const seconds = (end.at - start.at) / 1000;
    const pct = (ticks: number) => (100 * ticks) / TICKS / seconds;
    const server = pct(end.server - start.server);
    const postgres = pct(end.postgres - start.postgres);
    const loadGenerator = pct(end.children - start.children);
    const busy = pct(end.busy - start.busy);
    return { server, postgres, loadGenerator, other: Math.max(0, busy - server - postgres - loadGenerator) };
  };
}

/** Machine-wide CPU use over `ms`, in % of one core. */
async function busyOver(ms: number): Promise<number> {
  const start = machineBusyTicks();
  const t0 = performance.now();
  await sleep(ms);
  return (100 * (machineBusyTicks() - start)) / TICKS / ((performance.now() - t0) / 1000);
}

/**
 * Waits (at most `maxWaitMs`) until the machine is quiet — under `threshold`% of one core busy
 * over a second — so that other programs do not skew a case; returns the last reading.
 */
export async function waitForQuiet(threshold: number, maxWaitMs: number): Promise<number | undefined> {
  if (!available) return undefined;
  const deadline = Date.now() + maxWaitMs;
  let busy = await busyOver(1_000);
  while (busy > threshold && Date.now() < deadline) busy = await busyOver(1_000);
  return busy;
}
