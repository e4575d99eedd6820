import type { Logger } from "pino";
import type { Database, PreparedOptions } from "../db/client.js";
import { Batcher } from "./batcher.js";
import type { PreparedToken } from "./token.js";
import { EVENT_ORDER_LOCK, TOKEN_EVENTS_CHANNEL } from "./token-event.js";
import { isIntegrityViolation } from "./validation.js";

const MAX_BATCH = 500;

/**
 * Every token row and its event, for a whole batch, in one statement of a fixed text (column
 * arrays through unnest), so it is parsed and planned once per connection whatever the batch
 * size. Scopes travel space-joined: RFC 6749 §3.3 scope tokens hold no spaces. One of the two
 * endings below completes it.
 */
const INSERT_ROWS = `
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
)`;

/** PostgreSQL: each event NOTIFYed to every instance (see announcingInsert). */
const INSERT_BATCH_NOTIFYING = `${INSERT_ROWS}
select pg_notify('${TOKEN_EVENTS_CHANNEL}', case
  when octet_length(row_to_json(inserted)::text) < 7900 then row_to_json(inserted)::text
  else json_build_object('id', inserted.id, 'truncated', true)::text end)
from inserted order by inserted.id`;

/**
 * PGlite: every listener is in this process, so the events come back as rows and the database
 * hands them to the channel's listeners itself (PreparedOptions.announce), as a NOTIFY would, in
 * commit order. PostgreSQL's notification queue costs about a sixth of the batch here.
 */
const INSERT_BATCH_RETURNING = `${INSERT_ROWS}
select row_to_json(inserted)::text as notice from inserted order by inserted.id`;

type Pending = { token: PreparedToken; resolve: () => void; reject: (error: unknown) => void };

/**
 * Group commit for the token endpoint's hot path (see Batcher): the tokens of a batch, their
 * events and the events' announcement go out in one statement (atomic, one round trip, one WAL flush).
 * Each caller's promise settles after the commit that holds its token, so every token answered
 * is durable.
 */
export class TokenWriter {
  private readonly batcher: Batcher<Pending>;
  private readonly statement: string;
  private readonly options: PreparedOptions | undefined;

  constructor(
    private readonly database: Database,
    private readonly log: Logger,
    /** Concurrent batches (PGlite has one connection: 1). */
    concurrency: number,
    private readonly onStatement?: (sql: string) => void,
    /** How long a batch smaller than the previous one may wait for more (see Batcher). */
    gatherMs = 0,
  ) {
    this.statement = database.announcesInProcess ? INSERT_BATCH_RETURNING : INSERT_BATCH_NOTIFYING;
    this.options = database.announcesInProcess ? { announce: TOKEN_EVENTS_CHANNEL } : undefined;
    this.batcher = new Batcher((batch) => this.flush(batch), { concurrency, maxBatch: MAX_BATCH, gatherMs });
  }

  write(token: PreparedToken): Promise<void> {
    // The promise's own functions, not a closure over them: under tsx (keepNames) a named
    // closure costs a defineProperty call per token.
    return new Promise((resolve, reject) => this.batcher.add({ token, resolve, reject }));
  }

  private async flush(batch: Pending[]): Promise<void> {
    try {
      await this.insert(batch);
    } catch (error) {
      if (batch.length > 1 && isIntegrityViolation(error)) {
        // One row refused (its key or application deleted meanwhile) fails the whole statement,
        // which committed nothing: each token is written again alone, so only that one fails.
        for (const pending of batch) await this.flush([pending]);
        return;
      }
      this.log.error({ err: error, batch: batch.length }, "token batch write failed");
      for (const b of batch) b.reject(error);
      return;
    }
    for (const b of batch) b.resolve();
  }

  /** The batch's tokens and events in one statement. */
  private async insert(batch: Pending[]): Promise<void> {
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
    this.onStatement?.(this.statement);
    await this.database.prepared(this.statement, columns, this.options);
  }
}
