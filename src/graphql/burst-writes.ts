import type { Duplex } from "node:stream";

/** Sockets written to in the current burst, corked, with the bytes each held unsent before it. */
const corked = new Map<Duplex, number>();
let flushing = false;

function flush(): void {
  flushing = false;
  for (const socket of corked.keys()) socket.uncork();
  corked.clear();
}

/**
 * Call before writing to `socket`: what is written to it in the current burst goes out in one
 * write (one system call for many events, not one per event). A burst ends once the microtasks
 * already queued have run: it spans one event's fan-out, and every event of a transaction, which
 * the database delivers together (PGlite queues one microtask per notification, all at once, and
 * hands the token writer's events over in one loop; postgres.js hands over a whole read's
 * notifications in one call), but never waits for the event loop, which a long run of PGlite
 * queries may not reach for a while.
 *
 * Returns the bytes the socket held unsent when the burst began (`ws.bufferedAmount`): what the
 * client failed to read until then, not counting the burst now being written, which a client
 * that keeps up reads as fast as it comes.
 */
export function corkForBurst(socket: Duplex, ws: { readonly bufferedAmount: number }): number {
  const before = corked.get(socket);
  if (before !== undefined) return before;
  const unsent = ws.bufferedAmount;
  socket.cork();
  corked.set(socket, unsent);
  if (!flushing) {
    flushing = true;
    queueMicrotask(flush);
  }
  return unsent;
}
