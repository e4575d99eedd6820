import type { Logger } from "pino";
import { EventsInterruptedError } from "../domain/errors.js";
import type { TokenEventRecord } from "../domain/token-event.js";
import { fromNotice } from "../domain/token-event.js";
import type { Metrics } from "../metrics.js";
import type { EventBus } from "./bus.js";
import { Channel } from "./channel.js";

/** How long a read of an event announced by id may hold up the events after it. */
const LOAD_TIMEOUT_MS = 5_000;

/** `promise`, or a rejection once `ms` have passed. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Per-instance fan-out of committed token events to live subscribers, in commit (id) order. An
 * event announced by id only (too large for NOTIFY) is read before it is handed on, and the events
 * after it wait for that read (at most LOAD_TIMEOUT_MS). When events may have been missed (the
 * bus's stream was interrupted or came back, or such a read failed), every channel fails with
 * EventsInterruptedError: a subscriber resumes from its last cursor and the replay fills the gap,
 * instead of the stream going on without it.
 */
export class EventHub {
  private readonly channels = new Set<Channel<TokenEventRecord>>();
  /** The delivery still waiting for a read, which later events queue behind. */
  private pending: Promise<void> | undefined;

  constructor(
    bus: EventBus,
    private readonly queueLimit: number,
    metrics: Metrics,
    /** Reads an event announced by id only (too large for NOTIFY). */
    load: (id: number) => Promise<TokenEventRecord | null>,
    log: Logger,
  ) {
    const deliver = (event: TokenEventRecord) => {
      metrics.events.inc({ type: event.type });
      for (const channel of this.channels) channel.push(event);
    };
    bus.subscribe((notice) => {
      const event = fromNotice(notice);
      // The usual case: a whole event, nothing waiting before it.
      if (event && !this.pending) return deliver(event);
      // Settled into a value at once (a read's failure is handled here, not when its turn comes:
      // a rejection left waiting behind an earlier read would go unhandled).
      const ready: Promise<TokenEventRecord | null | Error> = event
        ? Promise.resolve(event)
        : withTimeout(load(notice.id), LOAD_TIMEOUT_MS).catch((error: unknown) =>
            error instanceof Error ? error : new Error(String(error)),
          );
      const delivered = (this.pending ?? Promise.resolve())
        .then(() => ready)
        .then((row) => {
          if (row instanceof Error) {
            log.error({ err: row, id: notice.id }, "could not read a token event announced by id");
            this.interrupt();
          } else if (row) deliver(row);
          else this.interrupt();
        });
      this.pending = delivered;
      void delivered.finally(() => {
        if (this.pending === delivered) this.pending = undefined;
      });
    });
    // Interrupted: the open streams miss what comes meanwhile. Back again: the streams opened
    // during the interruption (clients resuming at once) missed what came before it ended.
    bus.onConnectivity(() => this.interrupt());
    metrics.probes.subscribers = () => this.channels.size;
  }

  /** Fails every live channel: events may have been missed. */
  private interrupt(): void {
    for (const channel of [...this.channels]) channel.fail(new EventsInterruptedError());
  }

  /** A channel that receives every event from now on, until closed or overflowing. */
  open(onOverflow: () => void): Channel<TokenEventRecord> {
    const channel: Channel<TokenEventRecord> = new Channel(this.queueLimit, onOverflow, () =>
      this.channels.delete(channel),
    );
    this.channels.add(channel);
    return channel;
  }

  get subscribers(): number {
    return this.channels.size;
  }
}
