import type { Logger } from "pino";
import type { Database } from "../db/client.js";
import type { PreparedToken } from "./token.js";
import { EVENT_ORDER_LOCK, TOKEN_EVENTS_CHANNEL } from "./token-event.js";

const MAX_BATCH = 500;

/**
 * Every token row, its event and the event's NOTIFY, for a whole batch, in one statement of a
 * fixed text (column arrays through unnest), so it is parsed and planned once per connection
 * whatever the batch size. Scopes travel space-joined: RFC 6749 §3.3 scope tokens hold no spaces.
 */
const INSERT_BATCH = `
with x as (
  select * from unnest(
    $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::uuid[], $8::text[],
    $9::uuid[], $10::uuid[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[]::timestamptz[],
    $16::text[]::timestamptz[], $17::text[], $18::text[], $19::uuid[]
  ) with ordinality as x(id, domain, kind, format, client_id, application_id, application_key_id, key_type,
     user_id, refresh_family_id, scopes, token_hash, token_ciphertext, encryption_key_id, issued_at,
     expires_at, event_type, event_reason, actor_id, n)
), tokens as (
  insert into access_tokens (id, user_store_domain, kind, format, client_id, application_id, application_key_id,
    key_type, user_id, refresh_family_id, scopes, token_hash, token_ciphertext, encryption_key_id, issued_at, expires_at)
  select id, domain, kind::token_kind, format::token_format, client_id, application_id, application_key_id,
    key_type::key_type, user_id, refresh_family_id, coalesce(string_to_array(nullif(scopes, ''), ' '), '{}'), token_hash,
    token_ciphertext, encryption_key_id, issued_at, expires_at
  from x
), inserted as (
  insert into token_events (type, reason, token_id, token_kind, key_type, application_id, user_id, scopes, expires_at, actor_id)
  select event_type, event_reason, id, kind::token_kind, key_type::key_type, application_id, user_id,
    coalesce(string_to_array(nullif(scopes, ''), ' '), '{}'), expires_at, actor_id
  from x, (select pg_advisory_xact_lock(${EVENT_ORDER_LOCK})) as ordered order by n
  returning *
)
select pg_notify('${TOKEN_EVENTS_CHANNEL}', case
  when octet_length(row_to_json(inserted)::text) < 7900 then row_to_json(inserted)::text
  else json_build_object('id', inserted.id, 'truncated', true)::text end)
from inserted order by inserted.id`;

type Pending = { token: PreparedToken; done: (error?: unknown) => void };

/**
 * Group commit for the token endpoint's hot path. Requests that arrive while a write is in
 * flight are gathered and written together in one statement (atomic, one round trip, one WAL
 * flush for the whole batch). Each caller's promise settles after the commit that holds its
 * token, so every token answered is durable.
 */
export class TokenWriter {
  private pending: Pending[] = [];
  private inFlight = 0;
  private scheduled = false;
  /** Size of the batch last written: about how many callers are coming back for more. */
  private lastBatch = 0;
  /** While gathering: until when (performance.now()) a short batch may wait for the rest. */
  private gatherUntil = 0;

  constructor(
    private readonly database: Database,
    private readonly log: Logger,
    /** Concurrent batches (PGlite has one connection: 1). */
    private readonly concurrency: number,
    private readonly onStatement?: (sql: string) => void,
    /**
     * How long (ms) a batch smaller than the previous one may wait for the rest of its callers
     * (0: never). For a backend that blocks the event loop while it writes (PGlite), the callers
     * answered by one batch come back a few at a time; waiting a moment for them turns a run of
     * small batches, each paying the statement's and the commit's fixed cost, into one.
     */
    private readonly gatherMs = 0,
  ) {}

  write(token: PreparedToken): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ token, done: (error) => (error ? reject(error) : resolve()) });
      this.schedule();
    });
  }

  /**
   * Flushes after the current turn of the event loop, so that requests already read from their
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
    while (this.inFlight < this.concurrency && this.pending.length > 0) {
      if (this.gathering()) {
        this.schedule();
        return;
      }
      const batch = this.pending.splice(0, MAX_BATCH);
      this.lastBatch = batch.length;
      this.inFlight += 1;
      this.flush(batch).finally(() => {
        this.inFlight -= 1;
        this.schedule();
      });
    }
  }

  /** True while a short batch should wait for more callers (bounded by gatherMs). */
  private gathering(): boolean {
    if (this.gatherMs <= 0 || this.inFlight > 0 || this.pending.length >= this.lastBatch) {
      this.gatherUntil = 0;
      return false;
    }
    const now = performance.now();
    if (this.gatherUntil === 0) this.gatherUntil = now + this.gatherMs;
    if (now < this.gatherUntil) return true;
    this.gatherUntil = 0;
    return false;
  }

  private async flush(batch: Pending[]): Promise<void> {
    try {
      const columns: unknown[][] = Array.from({ length: 19 }, () => new Array(batch.length));
      batch.forEach(({ token: { token: t, event: e } }, i) => {
        const row = [
          t.id,
          t.userStoreDomain,
          t.kind,
          t.format,
          t.clientId,
          t.applicationId,
          t.applicationKeyId,
          t.keyType,
          t.userId,
          t.refreshFamilyId,
          t.scopes.join(" "),
          t.tokenHash,
          t.tokenCiphertext,
          t.encryptionKeyId,
          t.issuedAt.toISOString(),
          t.expiresAt?.toISOString() ?? null,
          e.type,
          e.reason ?? null,
          e.actorId ?? null,
        ];
        for (let c = 0; c < row.length; c++) (columns[c] as unknown[])[i] = row[c];
      });
      this.onStatement?.(INSERT_BATCH);
      await this.database.prepared(INSERT_BATCH, columns);
      for (const b of batch) b.done();
    } catch (error) {
      this.log.error({ err: error, batch: batch.length }, "token batch write failed");
      for (const b of batch) b.done(error);
    }
  }
}
