import { type ChildProcess, type StdioOptions, spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The project root: every child runs from there, so `--import tsx` resolves. */
export const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Messages a server child sends over IPC. */
export type ChildMessage =
  | { type: "ready"; url: string }
  | { type: "counts"; accessTokens: number; issuedEvents: number; statements: number }
  | { type: "error"; message: string };

const hasTaskset = spawnSync("taskset", ["-c", "0", "true"]).status === 0;

/** Whether CPU pinning is available (util-linux `taskset`); without it the cases share both cores. */
export const pinning = hasTaskset;

/** `command` prefixed with `taskset -c <core>` when pinning is available. */
export function pinned(core: number, command: string[]): string[] {
  return hasTaskset ? ["taskset", "-c", String(core), ...command] : command;
}

const running = new Set<ChildProcess>();

/** Kills every child still running, at once (last resort on exit: it cannot wait). */
export function killAllNow(): void {
  for (const child of running) child.kill("SIGKILL");
}

/** Spawns a child of the harness, tracked so that it is stopped even when the harness fails. */
export function spawnTracked(
  command: string[],
  options: { env?: NodeJS.ProcessEnv; ipc?: boolean; captureStdout?: boolean } = {},
): ChildProcess {
  const [file, ...args] = command;
  if (!file) throw new Error("empty command");
  const stdio: StdioOptions = ["ignore", options.captureStdout ? "pipe" : "inherit", "inherit"];
  if (options.ipc) stdio.push("ipc");
  const child: ChildProcess = spawn(file, args, { cwd: ROOT, env: options.env ?? process.env, stdio });
  running.add(child);
  child.once("exit", () => running.delete(child));
  return child;
}

/** Resolves with the child's exit code, or kills it (SIGTERM, then SIGKILL) after `timeoutMs`. */
export function waitForExit(child: ChildProcess, timeoutMs: number): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const term = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    const kill = setTimeout(() => child.kill("SIGKILL"), timeoutMs + 5_000);
    child.once("exit", (code) => {
      clearTimeout(term);
      clearTimeout(kill);
      resolve(code);
    });
  });
}

/** A server child speaking the harness IPC protocol (see token-server.ts, oidc-provider-server.ts). */
export class ServerChild {
  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly url: string,
  ) {}

  /** Starts `script` (a bench/ file, or an absolute path; run with tsx) pinned to `core`, and waits until it listens. */
  static async start(
    name: string,
    script: string,
    options: { core: number; env: NodeJS.ProcessEnv; nodeArgs?: string[]; timeoutMs?: number },
  ): Promise<ServerChild> {
    const command = pinned(options.core, [
      process.execPath,
      ...(options.nodeArgs ?? []),
      "--import",
      "tsx",
      fileURLToPath(new URL(script, import.meta.url)),
    ]);
    const child = spawnTracked(command, { env: options.env, ipc: true });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`${name} did not start within ${options.timeoutMs ?? 60_000} ms`));
      }, options.timeoutMs ?? 60_000);
      child.on("message", (message: ChildMessage) => {
        if (message.type === "ready") {
          clearTimeout(timer);
          resolve(message.url);
        } else if (message.type === "error") {
          clearTimeout(timer);
          reject(new Error(`${name} failed to start: ${message.message}`));
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited during start-up (code ${code}, signal ${signal})`));
      });
    });
    return new ServerChild(name, child, url);
  }

  /** Row counts from the server's own database connection (ours only). */
  counts(timeoutMs = 15_000): Promise<Extract<ChildMessage, { type: "counts" }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name}: no counts within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onMessage = (message: ChildMessage) => {
        if (message.type === "counts") {
          clearTimeout(timer);
          this.child.off("message", onMessage);
          resolve(message);
        } else if (message.type === "error") {
          clearTimeout(timer);
          this.child.off("message", onMessage);
          reject(new Error(`${this.name}: ${message.message}`));
        }
      };
      this.child.on("message", onMessage);
      this.child.send({ type: "counts" });
    });
  }

  /** Graceful stop (the server closes its database), bounded: SIGTERM then SIGKILL if it hangs. */
  async stop(timeoutMs = 20_000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    if (this.child.connected) this.child.send({ type: "stop" });
    else this.child.kill("SIGTERM");
    await waitForExit(this.child, timeoutMs);
  }
}
