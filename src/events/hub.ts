import type { TokenEventRecord } from "../domain/token-event.js";
import { fromNotice } from "../domain/token-event.js";
import type { Metrics } from "../metrics.js";
import type { EventBus } from "./bus.js";
import { Channel } from "./channel.js";

/** Per-instance fan-out of committed token events to live subscribers. */
export class EventHub {
  private readonly channels = new Set<Channel<TokenEventRecord>>();
  constructor(
    bus: EventBus,
    private readonly queueLimit: number,
    metrics: Metrics,
    /** Reads an event announced by id only (too large for NOTIFY). */
    load: (id: number) => Promise<TokenEventRecord | null>,
  ) {
    const deliver = (event: TokenEventRecord) => {
      metrics.events.inc({ type: event.type });
      for (const channel of this.channels) channel.push(event);
    };
    bus.subscribe((notice) => {
      const event = fromNotice(notice);
      if (event) deliver(event);
      else
        load(notice.id).then(
          (row) => row && deliver(row),
          () => undefined,
        );
    });
    metrics.probes.subscribers = () => this.channels.size;
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
