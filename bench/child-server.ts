/**
 * The child side of the harness IPC protocol for a server that stores nothing (the baselines and
 * the peer): "ready" with its URL once listening, "stop" (or the harness going away) closes it.
 */
import type { Server } from "node:http";
import type { ChildMessage } from "./children.js";

const send = (message: ChildMessage) => process.send?.(message);

/** Announces `server` at `url` to the harness and stops it when asked; `what` names it in errors. */
export function serveAsChild(server: Server, url: string, what: string): void {
  let stopping = false;
  const stop = (code: number) => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(1), 10_000).unref();
    server.closeAllConnections();
    server.close(() => process.exit(code));
  };
  process.on("message", (message: { type: string }) => {
    if (message.type === "stop") stop(0);
    if (message.type === "counts") send({ type: "error", message: `${what} stores nothing to count` });
  });
  process.on("disconnect", () => stop(1));
  process.on("SIGTERM", () => stop(0));
  process.on("SIGINT", () => stop(0));
  send({ type: "ready", url });
}
