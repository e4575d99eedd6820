/**
 * A bounded queue from the event hub to one subscriber. When the subscriber reads too slowly
 * and `limit` events wait, `onOverflow` runs (the socket is closed with a clear code) and the
 * channel ends: a slow reader never holds back the others or grows memory without bound.
 */
export class Channel<T> implements AsyncIterable<T> {
  private readonly queue: T[] = [];
  private waiting: ((result: IteratorResult<T>) => void) | undefined;
  private closed = false;

  constructor(
    private readonly limit: number,
    private readonly onOverflow: () => void,
    private readonly onClose: () => void,
  ) {}

  push(item: T): void {
    if (this.closed) return;
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = undefined;
      resolve({ value: item, done: false });
      return;
    }
    if (this.queue.length >= this.limit) {
      this.close();
      this.onOverflow();
      return;
    }
    this.queue.push(item);
  }

  /** Drops queued items (e.g. those a replay already delivered). */
  discard(predicate: (item: T) => boolean): void {
    for (let i = this.queue.length - 1; i >= 0; i--)
      if (predicate(this.queue[i] as T)) this.queue.splice(i, 1);
  }

  get pending(): number {
    return this.queue.length;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.waiting?.({ value: undefined, done: true });
    this.waiting = undefined;
    this.onClose();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        const item = this.queue.shift();
        if (item !== undefined) return Promise.resolve({ value: item, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.waiting = resolve;
        });
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
