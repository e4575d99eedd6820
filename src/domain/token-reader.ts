import type { Logger } from "pino";
import type { Database } from "../db/client.js";
import type { AccessTokenRow, RefreshTokenFamilyRow, RefreshTokenRow } from "../db/schema/index.js";

const MAX_BATCH = 500;

/** Milliseconds since the epoch, exactly what a JavaScript Date of the timestamp holds. */
const ms = (column: string) => `floor(extract(epoch from ${column}) * 1000)::int8`;

/**
 * Every token a batch asks for, with what introspection needs of its user and key, in one
 * statement of a fixed text (prepared once per connection whatever the batch size): access token
 * ids in $1, refresh token ids in $2. The rows come back as one JSON array, which both drivers
 * decode with one JSON.parse instead of parsing every column of every row.
 */
const READ_BATCH = `
select coalesce(json_agg(r), '[]') as rows from (
  select json_build_array('a', t.id, t.kind, t.client_id, t.application_id, t.key_type, t.user_id, t.scopes,
    t.token_hash, ${ms("t.issued_at")}, ${ms("t.expires_at")}, ${ms("t.revoked_at")}, ${ms("t.revoke_scheduled_at")},
    u.username, u.disabled_at is not null, k.allowed_domains) as r
  from unnest($1::uuid[]) as q(id)
  join access_tokens t on t.id = q.id
  left join users u on u.id = t.user_id
  left join application_keys k on k.id = t.application_key_id
  union all
  select json_build_array('r', rt.id, rt.token_hash, ${ms("rt.issued_at")}, ${ms("rt.expires_at")},
    ${ms("rt.used_at")}, ${ms("rt.revoked_at")}, ${ms("f.revoked_at")}, f.client_id, f.user_id,
    u.username, u.disabled_at is not null)
  from unnest($2::uuid[]) as q(id)
  join refresh_tokens rt on rt.id = q.id
  join refresh_token_families f on f.id = rt.family_id
  join users u on u.id = f.user_id
) as x`;

/** An access token as introspection sees it: the row's fields, its user's name and state, its key's domains. */
export interface AccessTokenRecord
  extends Pick<
    AccessTokenRow,
    | "id"
    | "kind"
    | "clientId"
    | "applicationId"
    | "keyType"
    | "userId"
    | "scopes"
    | "tokenHash"
    | "issuedAt"
    | "expiresAt"
    | "revokedAt"
    | "revokeScheduledAt"
  > {
  readonly username: string | null;
  readonly userDisabled: boolean;
  /** The application key's allowed domains; null for a token of no key (console tokens). */
  readonly allowedDomains: string[] | null;
}

/** A refresh token as introspection sees it, with its family and its user. */
export interface RefreshTokenRecord
  extends Pick<RefreshTokenRow, "id" | "tokenHash" | "issuedAt" | "expiresAt" | "usedAt" | "revokedAt"> {
  readonly familyRevokedAt: RefreshTokenFamilyRow["revokedAt"];
  readonly clientId: string;
  readonly userId: string;
  readonly username: string;
  readonly userDisabled: boolean;
}

type Kind = "a" | "r";
type TokenRecord = AccessTokenRecord | RefreshTokenRecord;
type Pending = { resolve: (rows: TokenRecord[]) => void; reject: (error: unknown) => void };

const date = (value: unknown) => (value == null ? null : new Date(value as number));

/** A row of READ_BATCH, by position: its first element says which of the two selects made it. */
function decode(r: unknown[]): [Kind, TokenRecord] {
  if (r[0] === "a") {
    const token = {
      id: r[1],
      kind: r[2],
      clientId: r[3],
      applicationId: r[4],
      keyType: r[5],
      userId: r[6],
      scopes: r[7],
      tokenHash: r[8],
      issuedAt: date(r[9]),
      expiresAt: date(r[10]),
      revokedAt: date(r[11]),
      revokeScheduledAt: date(r[12]),
      username: r[13],
      userDisabled: r[14],
      allowedDomains: r[15],
    };
    return ["a", token as AccessTokenRecord];
  }
  const token = {
    id: r[1],
    tokenHash: r[2],
    issuedAt: date(r[3]),
    expiresAt: date(r[4]),
    usedAt: date(r[5]),
    revokedAt: date(r[6]),
    familyRevokedAt: date(r[7]),
    clientId: r[8],
    userId: r[9],
    username: r[10],
    userDisabled: r[11],
  };
  return ["r", token as RefreshTokenRecord];
}

/**
 * Batched reads of tokens by id, the read-side twin of TokenWriter. Lookups that arrive within
 * one turn of the event loop (or while every connection is busy) go out together as one
 * statement, and each caller gets the rows of its own id: under load, N concurrent
 * introspections cost one round trip and one plan instead of 2N.
 */
export class TokenReader {
  /** Callers by `<kind>:<id>`, so an id asked for twice in one batch is read once. */
  private pending = new Map<string, Pending[]>();
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly database: Database,
    private readonly log: Logger,
    /** Concurrent batches (PGlite has one connection: 1). */
    private readonly concurrency: number,
    private readonly onStatement?: (sql: string) => void,
  ) {}

  /** The access token rows of this id (one, unless two user store domains hold the same id). */
  readAccessToken(id: string): Promise<AccessTokenRecord[]> {
    return this.read("a", id) as Promise<AccessTokenRecord[]>;
  }

  /** The refresh token of this id, with its family and user; null when unknown. */
  async readRefreshToken(id: string): Promise<RefreshTokenRecord | null> {
    const [row] = (await this.read("r", id)) as RefreshTokenRecord[];
    return row ?? null;
  }

  private read(kind: Kind, id: string): Promise<TokenRecord[]> {
    return new Promise((resolve, reject) => {
      const key = `${kind}:${id}`;
      const waiting = this.pending.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
      this.schedule();
    });
  }

  /** After the current turn of the event loop, so that requests already read join the batch. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    while (this.inFlight < this.concurrency && this.pending.size > 0) {
      let batch: Map<string, Pending[]>;
      if (this.pending.size <= MAX_BATCH) {
        batch = this.pending;
        this.pending = new Map();
      } else {
        batch = new Map([...this.pending].slice(0, MAX_BATCH));
        for (const key of batch.keys()) this.pending.delete(key);
      }
      this.inFlight += 1;
      this.flush(batch).finally(() => {
        this.inFlight -= 1;
        this.schedule();
      });
    }
  }

  private async flush(batch: Map<string, Pending[]>): Promise<void> {
    const ids: Record<Kind, string[]> = { a: [], r: [] };
    for (const key of batch.keys()) ids[key[0] as Kind].push(key.slice(2));
    try {
      this.onStatement?.(READ_BATCH);
      const [result] = await this.database.prepared<{ rows: unknown[][] }>(READ_BATCH, [ids.a, ids.r]);
      const found = new Map<string, TokenRecord[]>();
      for (const row of result?.rows ?? []) {
        const [kind, record] = decode(row);
        const key = `${kind}:${record.id}`;
        const rows = found.get(key);
        if (rows) rows.push(record);
        else found.set(key, [record]);
      }
      for (const [key, callers] of batch) {
        const rows = found.get(key) ?? [];
        for (const caller of callers) caller.resolve(rows);
      }
    } catch (error) {
      this.log.error({ err: error, batch: batch.size }, "token batch read failed");
      for (const callers of batch.values()) for (const caller of callers) caller.reject(error);
    }
  }
}
