/**
 * Group commit (and group read) for the hot paths: items that arrive while a statement is in
 * flight, or within one turn of the event loop, are handed to `run` together, so that N
 * concurrent callers cost one round trip, one plan and (for writes) one WAL flush instead of N.
 * TokenWriter and TokenReader are built on it.
 */
export class Batcher<T> {
  private pending: T[] = [];
  private inFlight = 0;
  private scheduled = false;
  /** Size of the batch last run: about how many callers are coming back for more. */
  private lastBatch = 0;
  /** While gathering: until when (performance.now()) a short batch may wait for the rest. */
  private gatherUntil = 0;

  constructor(
    private readonly run: (batch: T[]) => Promise<void>,
    private readonly options: {
      /** Batches in flight at once (PGlite has one connection: 1). */
      readonly concurrency: number;
      /** Items in one batch at most. */
      readonly maxBatch: number;
      /**
       * How long (ms) a batch smaller than the previous one may wait for the rest of its callers
       * (0: never). The callers one batch answered come back a few at a time (on PGlite, which
       * blocks the event loop while it works, especially so); waiting a moment for them turns a
       * run of small batches, each paying the statement's fixed cost, into one.
       */
      readonly gatherMs?: number;
    },
  ) {}

  add(item: T): void {
    this.pending.push(item);
    this.schedule();
  }

  /**
   * Runs after the current turn of the event loop, so that requests already read from their
   * sockets join the batch (PGlite answers synchronously: without this, every batch held one).
   */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    while (this.inFlight < this.options.concurrency && this.pending.length > 0) {
      if (this.gathering()) {
        this.schedule();
        return;
      }
      const batch = this.pending.splice(0, this.options.maxBatch);
      this.lastBatch = batch.length;
      this.inFlight += 1;
      this.run(batch)
        .catch(() => undefined) // `run` settles its own callers; nothing may stop the queue.
        .finally(() => {
          this.inFlight -= 1;
          this.schedule();
        });
    }
  }

  /** True while a short batch should wait for more callers (bounded by gatherMs). */
  private gathering(): boolean {
    const gatherMs = this.options.gatherMs ?? 0;
    if (gatherMs <= 0 || this.inFlight > 0 || this.pending.length >= this.lastBatch) {
      this.gatherUntil = 0;
      return false;
    }
    const now = performance.now();
    if (this.gatherUntil === 0) this.gatherUntil = now + gatherMs;
    if (now < this.gatherUntil) return true;
    this.gatherUntil = 0;
    return false;
  }
}
