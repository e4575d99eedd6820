import type { Duplex } from "node:stream";
import type { ExecutionResult } from "graphql";
import type { WebSocket } from "ws";
import type { LiveStream } from "../events/live-stream.js";
import { corkForBurst } from "./burst-writes.js";
import type { SelectionResults, Shared } from "./shared-execution.js";

/** Where a subscription's results go: its graphql-ws socket and subscription id. */
export interface Outlet {
  readonly socket: WebSocket;
  /** The TCP connection under `socket`. */
  readonly connection: Duplex;
  readonly id: string;
  /**
   * Unsent bytes beyond which, for `slowGraceMs` on end (or at once beyond 8 times as many), the
   * subscriber counts as too slow (its stream then ends).
   */
  readonly sendBufferLimit: number;
  readonly slowGraceMs: number;
}

const SEND_OPTIONS = { binary: false } as const;
/** Unsent bytes beyond this many times the limit end a subscriber at once, whatever the grace. */
const HARD_LIMIT_FACTOR = 8;
const DONE = Object.freeze({ value: undefined, done: true } as const);

/** graphql-ws's `next` payload: the result with its errors (if any) after the data, as JSON. */
function payloadOf(shared: Shared): string {
  if (shared.payload === undefined) {
    const { errors, ...rest } = shared.result;
    shared.payload = JSON.stringify(errors ? { ...rest, errors } : rest);
  }
  return shared.payload;
}

/**
 * Sends each result of `source` to the outlet as a graphql-ws `next` message, synchronously as
 * the source pushes it (results that execute asynchronously keep their order; a burst's messages
 * to one socket go out in one write), and tells the source when the client is too slow: when the
 * socket has held more than `sendBufferLimit` unsent bytes at the start of its bursts for
 * `slowGraceMs` (or more than HARD_LIMIT_FACTOR times as many at once), however large the burst
 * now being sent. As an iterator it yields nothing: it ends when the source does (graphql-ws then
 * sends `complete`) or fails with its error; `return()` (the client's `complete`, the socket
 * closed) stops sending at once, so no `next` ever follows the end.
 */
export class DirectDelivery implements AsyncGenerator<ExecutionResult> {
  private readonly prefix: string;
  private ended = false;
  /** Since when (performance.now()) the socket has held more than the limit unsent, if it does. */
  private overSince: number | undefined;
  /** Whether a `drain` listener is waiting to clear `overSince` (one at most). */
  private drainArmed = false;
  /** Sends waiting for an asynchronous result: later ones queue behind them. */
  private waiting: Promise<unknown> | undefined;
  private readonly finished: Promise<unknown>;

  constructor(
    private readonly source: LiveStream<{ id?: string }>,
    private readonly results: SelectionResults,
    private readonly outlet: Outlet,
  ) {
    this.prefix = `{"id":${JSON.stringify(outlet.id)},"type":"next","payload":`;
    this.finished = source
      .deliverTo((event) => this.deliver(event))
      .then(
        () => this.waiting,
        async (error: unknown) => {
          await this.waiting;
          throw error;
        },
      );
    // Handled by next(), which graphql-ws calls at once; never an unhandled rejection meanwhile.
    this.finished.catch(() => undefined);
  }

  next(): Promise<IteratorResult<ExecutionResult>> {
    return this.finished.then(() => DONE);
  }

  async return(): Promise<IteratorResult<ExecutionResult>> {
    this.ended = true;
    await this.source.return(undefined);
    return DONE;
  }

  async throw(error: unknown): Promise<IteratorResult<ExecutionResult>> {
    await this.return();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private deliver(event: { id?: string }): boolean {
    const { socket, connection, sendBufferLimit } = this.outlet;
    const shared = this.results.of(event);
    if (this.waiting === undefined && !(shared instanceof Promise)) this.send(shared);
    else {
      const sent: Promise<unknown> = Promise.all([this.waiting, shared]).then(([, s]) => this.send(s));
      const settled = () => {
        if (this.waiting === sent) this.waiting = undefined;
      };
      this.waiting = sent;
      sent.then(settled, settled);
    }
    // Judged by what the client left unread before this burst: never by a burst's size.
    return this.keepsUp(corkForBurst(connection, socket), sendBufferLimit);
  }

  /**
   * Over the limit is a warning, not a verdict: the server itself may have been unable to write
   * (embedded PGlite blocks the event loop through a long statement) and then released a backlog
   * at once. Still over it `slowGraceMs` later, or far over it, the client is too slow.
   */
  private keepsUp(unsent: number, limit: number): boolean {
    if (unsent <= limit) {
      this.overSince = undefined;
      return true;
    }
    if (unsent > limit * HARD_LIMIT_FACTOR) return false;
    const now = performance.now();
    if (this.overSince === undefined) {
      this.overSince = now;
      // Once the socket has sent everything, an earlier backlog no longer counts.
      if (!this.drainArmed) {
        this.drainArmed = true;
        this.outlet.connection.once("drain", () => {
          this.drainArmed = false;
          this.overSince = undefined;
        });
      }
    }
    return now - this.overSince < this.outlet.slowGraceMs;
  }

  private send(shared: Shared): void {
    const { socket, id } = this.outlet;
    if (this.ended || socket.readyState !== socket.OPEN) return;
    if (shared.frameId !== id || shared.frame === undefined) {
      shared.frame = Buffer.from(`${this.prefix}${payloadOf(shared)}}`);
      shared.frameId = id;
    }
    corkForBurst(this.outlet.connection, socket);
    socket.send(shared.frame, SEND_OPTIONS);
  }
}
