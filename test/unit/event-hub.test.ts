import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { TokenEventRecord } from "../../src/domain/token-event.js";
import type { EventBus, TokenEventNotice } from "../../src/events/bus.js";
import { EventHub } from "../../src/events/hub.js";
import { createMetrics } from "../../src/metrics.js";

/** The two things the hub uses of the bus, driven by the test. */
function fakeBus() {
  let notify: (notice: TokenEventNotice) => void = () => {};
  let connectivity: (connected: boolean) => void = () => {};
  const bus = {
    subscribe: (listener: typeof notify) => {
      notify = listener;
      return () => {};
    },
    onConnectivity: (listener: typeof connectivity) => {
      connectivity = listener;
      return () => {};
    },
  } as unknown as EventBus;
  return {
    bus,
    notice: (notice: Partial<TokenEventNotice>) => notify(notice as TokenEventNotice),
    connectivity: (c: boolean) => connectivity(c),
  };
}

const whole = (id: number): Partial<TokenEventNotice> => ({
  id,
  type: "ISSUED",
  reason: null,
  occurred_at: new Date(0).toISOString(),
  token_id: null,
  token_kind: null,
  key_type: null,
  application_id: null,
  user_id: null,
  scopes: [],
  expires_at: null,
});
const record = (id: number) => ({ id: String(id), type: "ISSUED" }) as TokenEventRecord;

/** A channel of `hub` and what it received, and how it ended. */
function listen(hub: EventHub) {
  const ids: string[] = [];
  const channel = hub.open(() => {});
  const ended = channel
    .consume((event) => {
      ids.push(event.id);
    })
    .then(
      () => "closed",
      (error: { code?: string }) => error.code,
    );
  return { ids, ended };
}

afterEach(() => {
  vi.useRealTimers();
});

describe("EventHub", () => {
  it("hands events on in id order, a read of one announced by id holding back those after it", async () => {
    const { bus, notice } = fakeBus();
    let release: (row: TokenEventRecord) => void = () => {};
    const hub = new EventHub(
      bus,
      100,
      createMetrics(),
      () =>
        new Promise((resolve) => {
          release = resolve;
        }),
      pino({ enabled: false }),
    );
    const stream = listen(hub);
    notice({ id: 1, truncated: true });
    notice(whole(2));
    expect(stream.ids).toEqual([]);
    release(record(1));
    await vi.waitFor(() => expect(stream.ids).toEqual(["1", "2"]));
    notice(whole(3));
    expect(stream.ids).toEqual(["1", "2", "3"]);
  });

  it("ends every stream with EVENTS_INTERRUPTED when a read fails, even one queued behind another read, without crashing", async () => {
    const { bus, notice } = fakeBus();
    const reads = new Map<number, { resolve: (r: TokenEventRecord) => void; reject: (e: Error) => void }>();
    const hub = new EventHub(
      bus,
      100,
      createMetrics(),
      (id) => new Promise((resolve, reject) => reads.set(id, { resolve, reject })),
      pino({ enabled: false }),
    );
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    try {
      const stream = listen(hub);
      notice({ id: 1, truncated: true });
      notice({ id: 2, truncated: true });
      // The second read fails while the first is still out.
      reads.get(2)?.reject(Object.assign(new Error("lost"), { code: "ECONNRESET" }));
      await new Promise((resolve) => setTimeout(resolve, 20));
      reads.get(1)?.resolve(record(1));
      expect(await stream.ended).toBe("EVENTS_INTERRUPTED");
      expect(stream.ids).toEqual(["1"]);
      // Later streams get later events.
      const next = listen(hub);
      notice(whole(3));
      await vi.waitFor(() => expect(next.ids).toEqual(["3"]));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("gives up on a read that does not answer within 5 s, and lets the events after it through", async () => {
    vi.useFakeTimers();
    const { bus, notice } = fakeBus();
    const hub = new EventHub(
      bus,
      100,
      createMetrics(),
      () => new Promise(() => {}),
      pino({ enabled: false }),
    );
    const stuck = listen(hub);
    notice({ id: 1, truncated: true });
    await vi.advanceTimersByTimeAsync(5_000);
    expect(await stuck.ended).toBe("EVENTS_INTERRUPTED");
    const next = listen(hub);
    notice(whole(2));
    await vi.advanceTimersByTimeAsync(0);
    expect(next.ids).toEqual(["2"]);
  });

  it("ends the streams open when the bus is interrupted, and those opened meanwhile when it is back", async () => {
    const { bus, connectivity } = fakeBus();
    const hub = new EventHub(bus, 100, createMetrics(), async () => null, pino({ enabled: false }));
    const before = listen(hub);
    connectivity(false);
    expect(await before.ended).toBe("EVENTS_INTERRUPTED");
    // A client resuming at once opens a stream while the events still cannot arrive…
    const during = listen(hub);
    connectivity(true);
    // …which would miss what came before the bus was back.
    expect(await during.ended).toBe("EVENTS_INTERRUPTED");
    const after = listen(hub);
    expect(hub.subscribers).toBe(1);
    void after;
  });
});
