/**
 * Takes one item of a live stream, synchronously; returns false when the consumer has fallen too
 * far behind (its socket holds too much it could not send): a slow consumer, to be cut off.
 */
export type Sink<T> = (item: T) => boolean;

/**
 * A live subscription's source: an async iterator, as GraphQL's `subscribe` expects, that can
 * also hand its items straight to a sink as they arrive — no promise and no queue per item,
 * which is what lets one event reach thousands of WebSocket subscribers cheaply.
 */
export interface LiveStream<T> extends AsyncGenerator<T, undefined> {
  /**
   * Hands every item to `sink` (instead of through `next()`); settles when the stream ends,
   * rejecting with the error that ended it. Only before any `next()`.
   */
  deliverTo(sink: Sink<T>): Promise<void>;
}

export function isLiveStream<T>(value: unknown): value is LiveStream<T> {
  return typeof (value as Partial<LiveStream<T>> | null)?.deliverTo === "function";
}

const DONE: IteratorResult<never, undefined> = Object.freeze({ value: undefined, done: true });

/**
 * A LiveStream whose subclass produces items in `run`, handing each to `emit`. Written as a class
 * (methods on the prototype, no closures per stream): thousands of idle subscriptions hold one.
 */
export abstract class LiveSource<T> implements LiveStream<T> {
  private started = false;
  private finished = false;
  private failure: { error: unknown } | undefined;
  private sink: Sink<T> | undefined;
  /** A `next()` waiting for an item. */
  private reader:
    | { resolve: (step: IteratorResult<T, undefined>) => void; reject: (e: unknown) => void }
    | undefined;
  /** An item waiting for a `next()`, and what its producer awaits. */
  private offered: { item: T; taken: () => void } | undefined;

  /** Produces items until the stream ends (resolves) or fails (rejects). */
  protected abstract run(): Promise<void>;
  /** Makes `run` finish soon (the reader is gone). */
  protected abstract stop(): void;
  /** Ends the stream as a slow consumer (a sink returned false). */
  protected abstract overflow(): void;

  /**
   * Hands an item on: returns once a sink took it (or a waiting `next()`), or a promise until a
   * `next()` takes it — the producer waits, so that items queue where their limit is enforced.
   */
  protected emit(item: T): void | Promise<void> {
    if (this.finished) return;
    if (this.sink) {
      if (!this.sink(item)) this.overflow();
      return;
    }
    const reader = this.reader;
    if (reader) {
      this.reader = undefined;
      reader.resolve({ value: item, done: false });
      return;
    }
    return new Promise<void>((taken) => {
      this.offered = { item, taken };
    });
  }

  next(): Promise<IteratorResult<T, undefined>> {
    const offered = this.offered;
    if (offered) {
      this.offered = undefined;
      offered.taken();
      return Promise.resolve({ value: offered.item, done: false });
    }
    const failure = this.failure;
    if (failure) {
      this.failure = undefined;
      return Promise.reject(failure.error);
    }
    if (this.finished) return Promise.resolve(DONE);
    if (!this.started) {
      this.started = true;
      this.run().then(
        () => this.end(undefined),
        (error: unknown) => this.end({ error }),
      );
    }
    return new Promise((resolve, reject) => {
      this.reader = { resolve, reject };
    });
  }

  deliverTo(sink: Sink<T>): Promise<void> {
    if (this.started) return Promise.reject(new Error("the stream is already being read"));
    this.started = true;
    this.sink = sink;
    return this.run().finally(() => this.end(undefined));
  }

  // Straight through, even while a next() waits (an async generator would queue it behind).
  return(): Promise<IteratorResult<T, undefined>> {
    if (!this.finished) this.stop();
    this.end(undefined);
    this.failure = undefined;
    return Promise.resolve(DONE);
  }

  throw(error: unknown): Promise<IteratorResult<T, undefined>> {
    void this.return();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private end(failure: { error: unknown } | undefined): void {
    if (this.finished) return;
    this.finished = true;
    this.offered?.taken();
    this.offered = undefined;
    const reader = this.reader;
    this.reader = undefined;
    if (!reader) this.failure = failure;
    else if (failure) reader.reject(failure.error);
    else reader.resolve(DONE);
  }
}
