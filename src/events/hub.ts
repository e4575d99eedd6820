import type { Logger } from "pino";
import { EventsInterruptedError } from "../domain/errors.js";
import type { TokenEventRecord } from "../domain/token-event.js";
import { fromNotice } from "../domain/token-event.js";
import type { Metrics } from "../metrics.js";
import type { EventBus } from "./bus.js";
import { Channel } from "./channel.js";

/**
 * Per-instance fan-out of committed token events to live subscribers, in commit (id) order. An
 * event announced by id only (too large for NOTIFY) is read before it is handed on, and the events
 * after it wait for that read. When events may have been missed (the bus's stream was interrupted,
 * or such a read failed), every channel fails with EventsInterruptedError: a subscriber resumes
 * from its last cursor and the replay fills the gap, instead of the stream going on without it.
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
      const ready = event ?? load(notice.id);
      const delivered = (this.pending ?? Promise.resolve())
        .then(() => ready)
        .then(
          (row) => {
            if (row) deliver(row);
            else this.interrupt();
          },
          (error: unknown) => {
            log.error({ err: error, id: notice.id }, "could not read a token event announced by id");
            this.interrupt();
          },
        );
      this.pending = delivered;
      void delivered.finally(() => {
        if (this.pending === delivered) this.pending = undefined;
      });
    });
    bus.onConnectivity((connected) => {
      if (!connected) this.interrupt();
    });
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
