import { setTimeout as sleep } from "node:timers/promises";
import { killAllNow } from "./children.js";

/** Teardown steps, run in reverse order, each bounded, on success, failure, signal or time-out. */
const steps: Array<{ name: string; run: () => Promise<unknown> }> = [];
let running: Promise<void> | undefined;

/** Registers something to stop or remove at the end (a server, a database, a directory). */
export function onTeardown(name: string, run: () => Promise<unknown>): void {
  steps.push({ name, run });
}

/** Runs every step once (30 s at most each), then kills any child still running. */
export function tearDown(): Promise<void> {
  running ??= (async () => {
    for (const step of steps.reverse()) {
      try {
        await Promise.race([
          step.run(),
          sleep(30_000).then(() => {
            throw new Error("timed out");
          }),
        ]);
      } catch (error) {
        console.error(`cleanup: ${step.name} failed: ${(error as Error).message}`);
      }
    }
    killAllNow();
  })();
  return running;
}

/**
 * Tears down on SIGINT/SIGTERM and after `budgetMs` (a hung server or database must not keep the
 * benchmark running), and kills children on any exit.
 */
export function guardRun(budgetMs: number): void {
  process.on("exit", killAllNow);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping everything the benchmark started`);
      void tearDown().finally(() => process.exit(130));
    });
  }
  setTimeout(() => {
    console.error(`the benchmark took longer than ${budgetMs / 1000} s: stopping`);
    void tearDown().finally(() => process.exit(1));
  }, budgetMs).unref();
}
