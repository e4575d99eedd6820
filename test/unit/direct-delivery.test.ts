import { afterEach, describe, expect, it, vi } from "vitest";
import type { Sink } from "../../src/events/live-stream.js";
import { DirectDelivery, type Outlet } from "../../src/graphql/direct-delivery.js";
import type { SelectionResults } from "../../src/graphql/shared-execution.js";

const LIMIT = 1000;

/** A subscription whose socket's unsent bytes the test sets; returns what each event's sink said. */
function subscription(slowGraceMs: number) {
  let sink: Sink<{ id: string }> | undefined;
  const source = {
    deliverTo: (s: Sink<{ id: string }>) => {
      sink = s;
      return new Promise<void>(() => undefined);
    },
    return: async () => ({ value: undefined, done: true as const }),
  };
  const socket = { OPEN: 1, readyState: 1, bufferedAmount: 0, send: () => undefined };
  let drained: (() => void) | undefined;
  const outlet = {
    socket,
    connection: {
      cork: () => undefined,
      uncork: () => undefined,
      once: (_event: "drain", listener: () => void) => {
        drained = listener;
      },
    },
    id: "1",
    sendBufferLimit: LIMIT,
    slowGraceMs,
  } as unknown as Outlet;
  const results = { of: () => ({ result: { data: { tokenEvents: null } } }) } as unknown as SelectionResults;
  new DirectDelivery(source as never, results, outlet);
  /** One burst (a microtask turn apart from the last): the sink's verdict with `unsent` bytes waiting. */
  const burst = async (unsent: number) => {
    socket.bufferedAmount = unsent;
    const keepsUp = (sink as Sink<{ id: string }>)({ id: "e" });
    await Promise.resolve(); // the burst ends
    return keepsUp;
  };
  /** The socket sent everything it held (its `drain`). */
  burst.drain = () => drained?.();
  return burst;
}

describe("DirectDelivery's slow-consumer verdict", () => {
  afterEach(() => vi.useRealTimers());

  it("forgives a socket over the limit for less than the grace, not longer", async () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const burst = subscription(2000);
    expect(await burst(LIMIT)).toBe(true);
    expect(await burst(LIMIT + 1)).toBe(true);
    vi.advanceTimersByTime(1999);
    expect(await burst(5 * LIMIT)).toBe(true);
    vi.advanceTimersByTime(1);
    expect(await burst(LIMIT + 1)).toBe(false);
  });

  it("starts the grace again once the socket was back under the limit", async () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const burst = subscription(2000);
    expect(await burst(2 * LIMIT)).toBe(true);
    vi.advanceTimersByTime(1500);
    expect(await burst(LIMIT / 2)).toBe(true);
    vi.advanceTimersByTime(1500);
    expect(await burst(2 * LIMIT)).toBe(true);
    vi.advanceTimersByTime(1999);
    expect(await burst(2 * LIMIT)).toBe(true);
    vi.advanceTimersByTime(1);
    expect(await burst(2 * LIMIT)).toBe(false);
  });

  it("forgets an earlier backlog once the socket drained, even with no event in between", async () => {
    vi.useFakeTimers({ toFake: ["performance"] });
    const burst = subscription(2000);
    expect(await burst(2 * LIMIT)).toBe(true);
    burst.drain();
    vi.advanceTimersByTime(5000);
    expect(await burst(2 * LIMIT)).toBe(true);
    vi.advanceTimersByTime(2000);
    expect(await burst(2 * LIMIT)).toBe(false);
  });

  it("cuts off at once far over the limit, and at once over it with no grace", async () => {
    expect(await subscription(60_000)(8 * LIMIT)).toBe(true);
    expect(await subscription(60_000)(8 * LIMIT + 1)).toBe(false);
    expect(await subscription(0)(LIMIT + 1)).toBe(false);
  });
});
