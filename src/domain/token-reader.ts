import type { Logger } from "pino";
import type { Database } from "../db/client.js";
import { readWithReconnect } from "../db/connection-loss.js";
import type { AccessTokenRow, RefreshTokenFamilyRow, RefreshTokenRow } from "../db/schema/index.js";
import { Batcher } from "./batcher.js";

const MAX_BATCH = 500;

/**
 * One batch in flight at a time, on either driver: the callers that arrive meanwhile wait for it
 * and go out together as the next one. Each statement has a fixed cost on both sides (a write, a
 * read and a wake-up of the other process, a plan, a result to parse) that a bigger batch shares
 * out. On PostgreSQL, where the reader has a connection of its own (PreparedOptions.reader),
 * /introspect at 16 connections, sixteen alternating 3-second runs each: 4-5% more requests per
 * second than with four batches in flight, about the same at 64 connections.
 */
const READS_IN_FLIGHT = 1;

/**
 * What an access token read returns: each record field with the SQL that gives it, in the order
 * of READ_ACCESS's arrays. Fields named `…At` come back as Dates (see recordsOf).
 */
const ACCESS_FIELDS = {
  id: "t.id",
  kind: "t.kind",
  clientId: "t.client_id",
  applicationId: "t.application_id",
  keyType: "t.key_type",
  userId: "t.user_id",
  scopes: "t.scopes",
  tokenHash: "t.token_hash",
  issuedAt: "t.issued_at",
  expiresAt: "t.expires_at",
  revokedAt: "t.revoked_at",
  revokeScheduledAt: "t.revoke_scheduled_at",
  // A user deleted meanwhile takes its tokens with it (cascade); until then, no name and not disabled.
  username: "u.username",
  userDisabled: "coalesce(u.disabled, false)",
  allowedDomains: "k.allowed_domains",
} as const;

/** The same for a refresh token, with its family and its user. */
const REFRESH_FIELDS = {
  id: "rt.id",
  tokenHash: "rt.token_hash",
  issuedAt: "rt.issued_at",
  expiresAt: "rt.expires_at",
  usedAt: "rt.used_at",
  revokedAt: "rt.revoked_at",
  familyRevokedAt: "f.revoked_at",
  clientId: "f.client_id",
  userId: "f.user_id",
  username: "u.username",
  userDisabled: "u.disabled",
} as const;

/** One JSON array per column, each holding that column of every row: `[[ids…], [kinds…], …]`. */
const columns = (fields: Readonly<Record<string, string>>) =>
  `json_build_array(${Object.values(fields)
    .map((sql) => `json_agg(${sql})`)
    .join(", ")})`;

/**
 * Every token a batch asks for, in one statement of a fixed text (prepared once per connection
 * whatever the batch size), with the access token ids and then the refresh token ids as arrays.
 * There is a text for batches of access tokens, one for refresh tokens and one for both: each
 * part costs even when its array is empty. Shaped for cost (measured on PGlite, where the
 * statement runs on the event loop):
 * - `(select $n)` hides the array from the planner, so the cached generic plan serves every
 *   batch; an array it can see would make it plan each execution anew for its exact size;
 * - `offset 0` keeps every lookup (token, family, user, key) a primary-key probe, whatever the
 *   planner guessed of a table's size when it made the plan it keeps;
 * - each token's user and key are probed beside it (left joins: a token may have neither), which
 *   costs less than gathering the distinct ids first and reading those;
 * - everything comes back as one JSON value, `[access, refresh]`, each part an array per column
 *   (see `columns`): one JSON.parse instead of parsing every column of every row, and each
 *   column's type is looked up once per statement rather than once per row.
 */
function readStatement(access: boolean, refresh: boolean): string {
  const refreshIds = access ? "$2" : "$1";
  const owner = (userId: string) => `(select username, disabled_at is not null as disabled
      from users where id = ${userId} offset 0) as u`;
  const accessPart = `(select ${columns(ACCESS_FIELDS)}
    from unnest((select $1::uuid[])) as q(id)
    cross join lateral (select * from access_tokens where id = q.id offset 0) as t
    left join lateral ${owner("t.user_id")} on true
    left join lateral (select allowed_domains from application_keys
      where id = t.application_key_id offset 0) as k on true)`;
  // The refresh token's family and user are required (inner joins): without them, no token.
  const refreshPart = `(select ${columns(REFRESH_FIELDS)}
    from unnest((select ${refreshIds}::uuid[])) as q(id)
    cross join lateral (select * from refresh_tokens where id = q.id offset 0) as rt
    cross join lateral (select * from refresh_token_families where id = rt.family_id offset 0) as f
    cross join lateral ${owner("f.user_id")})`;
  return `select json_build_array(${access ? accessPart : "null"}, ${refresh ? refreshPart : "null"}) as rows`;
}

const READ_ACCESS = readStatement(true, false);
const READ_REFRESH = readStatement(false, true);
const READ_BOTH = readStatement(true, true);

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
type Pending = { key: string; resolve: (rows: TokenRecord[]) => void; reject: (error: unknown) => void };
/** A part of the statement's result: one array per column (json_agg of no rows is null). */
type Columns = (unknown[] | null)[];

const date = (value: unknown) => (value == null ? null : new Date(value as string));

/**
 * The records of one part of a read's result, rebuilt from its columns (see readStatement) and
 * named by `fields` (ACCESS_FIELDS or REFRESH_FIELDS); `…At` fields become Dates.
 */
function* recordsOf(part: Columns | null, fields: Readonly<Record<string, string>>): Generator<unknown> {
  const names = Object.keys(fields);
  const dates = names.map((name) => name.endsWith("At"));
  const columns = (part ?? []) as unknown[][];
  // json_agg gives null only for no rows at all: a part with rows has every column.
  const count = columns[0]?.length ?? 0;
  for (let i = 0; i < count; i++) {
    const record: Record<string, unknown> = {};
    for (let c = 0; c < names.length; c++) {
      const value = (columns[c] as unknown[])[i];
      record[names[c] as string] = dates[c] ? date(value) : value;
    }
    yield record;
  }
}

/** The tokens of a read's result, `[access, refresh]`. */
function* decode([access, refresh]: (Columns | null)[]): Generator<[Kind, TokenRecord]> {
  for (const token of recordsOf(access ?? null, ACCESS_FIELDS)) yield ["a", token as AccessTokenRecord];
  for (const token of recordsOf(refresh ?? null, REFRESH_FIELDS)) yield ["r", token as RefreshTokenRecord];
}

/**
 * Batched reads of tokens by id, the read-side twin of TokenWriter. Lookups that arrive within
 * one turn of the event loop (or while the batch before them is in flight) go out together
 * as one statement, and each caller gets the rows of its own id: under load, N concurrent
 * introspections cost one round trip and one plan instead of 2N.
 */
export class TokenReader {
  private readonly batcher: Batcher<Pending>;

  constructor(
    private readonly database: Database,
    private readonly log: Logger,
    private readonly onStatement?: (sql: string) => void,
    /** How long a batch smaller than the previous one may wait for more (see Batcher). */
    gatherMs = 0,
  ) {
    this.batcher = new Batcher((batch) => this.flush(batch), {
      concurrency: READS_IN_FLIGHT,
      maxBatch: MAX_BATCH,
      gatherMs,
    });
  }

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
    return new Promise((resolve, reject) => this.batcher.add({ key: `${kind}:${id}`, resolve, reject }));
  }

  private async flush(callers: Pending[]): Promise<void> {
    // Callers by `<kind>:<id>`, so that an id asked for twice in one batch is read once.
    const batch = new Map<string, Pending[]>();
    for (const caller of callers) {
      const same = batch.get(caller.key);
      if (same) same.push(caller);
      else batch.set(caller.key, [caller]);
    }
    const ids: Record<Kind, string[]> = { a: [], r: [] };
    for (const key of batch.keys()) ids[key[0] as Kind].push(key.slice(2));
    try {
      const [text, params] =
        ids.r.length === 0
          ? [READ_ACCESS, [ids.a]]
          : ids.a.length === 0
            ? [READ_REFRESH, [ids.r]]
            : [READ_BOTH, [ids.a, ids.r]];
      const [result] = await readWithReconnect(this.log, "token batch read", () => {
        this.onStatement?.(text);
        return this.database.prepared<{ rows: (Columns | null)[] }>(text, params, { reader: true });
      });
      const found = new Map<string, TokenRecord[]>();
      for (const [kind, record] of decode(result?.rows ?? [])) {
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
