/**
 * What a consumer does with one item: returns once done, or a promise while it finishes (an
 * item whose handling needs a database read); later items wait in the channel until then.
 */
export type Consume<T> = (item: T) => void | Promise<void>;

/**
 * A bounded queue from the event hub to one subscriber. While its consumer keeps up, each item
 * is handed over as it is pushed, synchronously (no promise per item); while the consumer is
 * busy, or before it starts, items wait here in order. When `limit` items wait, `onOverflow`
 * runs (the socket is closed with a clear code) and the channel ends: a slow reader never holds
 * back the others or grows memory without bound.
 */
export class Channel<T> {
  private readonly queue: T[] = [];
  private consumer: Consume<T> | undefined;
  /** True while the consumer handles an item (or awaits one): pushes queue behind it. */
  private busy = false;
  private closed = false;
  /** What ended the channel, when `fail` did. */
  private failure: { error: unknown } | undefined;
  private settle: { resolve: () => void; reject: (error: unknown) => void } | undefined;

  constructor(
    private readonly limit: number,
    private readonly onOverflow: () => void,
    private readonly onClose: () => void,
  ) {}

  push(item: T): void {
    if (this.closed) return;
    if (this.busy || this.consumer === undefined) {
      if (this.queue.length >= this.limit) this.overflow();
      else this.queue.push(item);
      return;
    }
    this.queue.push(item);
    this.busy = true;
    this.drain();
  }

  /**
   * Hands every item, queued and later ones, to `consume`, in order; settles when the channel
   * closes, or rejects with what `consume` threw (closing the channel).
   */
  consume(consume: Consume<T>): Promise<void> {
    if (this.consumer) throw new Error("the channel already has a consumer");
    const done = new Promise<void>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.consumer = consume;
    if (this.failure) this.settle?.reject(this.failure.error);
    else if (this.closed) this.settle?.resolve();
    else {
      this.busy = true;
      this.drain();
    }
    return done;
  }

  /** Drops queued items (e.g. those a replay already delivered). */
  discard(predicate: (item: T) => boolean): void {
    for (let i = this.queue.length - 1; i >= 0; i--)
      if (predicate(this.queue[i] as T)) this.queue.splice(i, 1);
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Ends the channel as too slow a reader: `onOverflow` runs. */
  overflow(): void {
    if (this.closed) return;
    this.close();
    this.onOverflow();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.onClose();
    this.settle?.resolve();
  }

  /** Hands queued items to the consumer until it is busy or the queue is empty. */
  private drain(): void {
    while (!this.closed && this.queue.length > 0) {
      let pending: void | Promise<void>;
      try {
        pending = (this.consumer as Consume<T>)(this.queue.shift() as T);
      } catch (error) {
        this.fail(error);
        return;
      }
      if (pending) {
        pending.then(
          () => this.drain(),
          (error: unknown) => this.fail(error),
        );
        return;
      }
    }
    this.busy = false;
  }

  /**
   * Ends the channel with `error`: `consume` rejects with it (at once, or when it is called, if
   * the consumer has not started yet).
   */
  fail(error: unknown): void {
    if (this.closed) return;
    this.failure = { error };
    const settle = this.settle;
    this.settle = undefined;
    this.close();
    settle?.reject(error);
  }
}
