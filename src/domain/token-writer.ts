import { sql } from "drizzle-orm";
import type { Logger } from "pino";
import type { Db } from "../db/client.js";
import { accessTokens } from "../db/schema/index.js";
import type { PreparedToken } from "./token.js";
import { announcingInsert } from "./token-event.js";

const MAX_BATCH = 500;

/**
 * Group commit for the token endpoint's hot path. Requests that arrive while a write is in
 * flight are gathered and written together: every token row, its event and the event's NOTIFY in
 * one statement (atomic, one round trip, one WAL flush for the whole batch). Each caller's
 * promise settles after the commit that holds its token, so every token answered is durable.
 */
export class TokenWriter {
  private pending: { token: PreparedToken; done: (error?: unknown) => void }[] = [];
  private inFlight = 0;

  constructor(
    private readonly db: Db,
    private readonly log: Logger,
    /** Concurrent batches (PGlite has one connection: 1). */
    private readonly concurrency: number,
  ) {}

  write(token: PreparedToken): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ token, done: (error) => (error ? reject(error) : resolve()) });
      this.drain();
    });
  }

  private drain(): void {
    while (this.inFlight < this.concurrency && this.pending.length > 0) {
      const batch = this.pending.splice(0, MAX_BATCH);
      this.inFlight += 1;
      this.flush(batch).finally(() => {
        this.inFlight -= 1;
        this.drain();
      });
    }
  }

  private async flush(batch: { token: PreparedToken; done: (error?: unknown) => void }[]): Promise<void> {
    try {
      const rows = this.db.insert(accessTokens).values(batch.map((b) => b.token.token));
      await this.db.execute(
        announcingInsert(
          this.db,
          batch.map((b) => b.token.event),
          sql`tokens as (${rows.getSQL()})`,
        ),
      );
      for (const b of batch) b.done();
    } catch (error) {
      this.log.error({ err: error, batch: batch.length }, "token batch write failed");
      for (const b of batch) b.done(error);
    }
  }
}
