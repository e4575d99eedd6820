import type { Logger } from "pino";
import type { Database } from "../db/client.js";
import type { AccessTokenRow, RefreshTokenFamilyRow, RefreshTokenRow } from "../db/schema/index.js";
import { Batcher } from "./batcher.js";

const MAX_BATCH = 500;

/**
 * Every token a batch asks for, in one statement of a fixed text (prepared once per connection
 * whatever the batch size), with the access token ids and then the refresh token ids as arrays.
 * There is a text for batches of access tokens, one for refresh tokens and one for both: each
 * part costs even when its array is empty. Shaped for cost:
 * - `(select $n)` hides the array from the planner, so the cached generic plan serves every
 *   batch; an array it can see would make it plan each execution anew for its exact size;
 * - `offset 0` keeps every lookup (tokens, families, users, keys) a primary-key probe, whatever
 *   the planner guessed of a table's size when it made the plan it keeps;
 * - users and keys are read once per distinct id, not once per token;
 * - everything comes back as one JSON value, `[access, refresh, users, keys]`: one JSON.parse
 *   instead of parsing every column of every row.
 */
function readStatement(access: boolean, refresh: boolean): string {
  const refreshIds = access ? "$2" : "$1";
  const parts = {
    a: `a as materialized (
      select t.id, t.kind, t.client_id, t.application_id, t.key_type, t.user_id, t.scopes, t.token_hash,
        t.issued_at, t.expires_at, t.revoked_at, t.revoke_scheduled_at, t.application_key_id
      from unnest((select $1::uuid[])) as q(id)
      cross join lateral (select * from access_tokens where id = q.id offset 0) as t)`,
    r: `r as materialized (
      select rt.id, rt.token_hash, rt.issued_at, rt.expires_at, rt.used_at, rt.revoked_at,
        f.revoked_at as family_revoked_at, f.client_id, f.user_id
      from unnest((select ${refreshIds}::uuid[])) as q(id)
      cross join lateral (select * from refresh_tokens where id = q.id offset 0) as rt
      cross join lateral (select * from refresh_token_families where id = rt.family_id offset 0) as f)`,
    accessRows: `(select json_agg(json_build_array(id, kind, client_id, application_id, key_type, user_id, scopes,
      token_hash, issued_at, expires_at, revoked_at, revoke_scheduled_at, application_key_id)) from a)`,
    refreshRows: `(select json_agg(json_build_array(id, token_hash, issued_at, expires_at, used_at, revoked_at,
      family_revoked_at, client_id, user_id)) from r)`,
    keys: `(select json_agg(json_build_array(k.id, k.allowed_domains))
      from (select distinct application_key_id as id from a where application_key_id is not null) as d
      cross join lateral (select * from application_keys where id = d.id offset 0) as k)`,
  };
  const ctes = [access && parts.a, refresh && parts.r].filter(Boolean).join(", ");
  const owners = [access && "select user_id as id from a", refresh && "select user_id as id from r"];
  return `with ${ctes}
    select json_build_array(
      ${access ? parts.accessRows : "null"},
      ${refresh ? parts.refreshRows : "null"},
      (select json_agg(json_build_array(u.id, u.username, u.disabled_at is not null))
        from (select distinct id from (${owners.filter(Boolean).join(" union all ")}) as ids where id is not null) as d
        cross join lateral (select * from users where id = d.id offset 0) as u),
      ${access ? parts.keys : "null"}
    ) as rows`;
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
type Row = unknown[];

const date = (value: unknown) => (value == null ? null : new Date(value as string));

/** The tokens of READ_BATCH's result (rows by position), each joined to its user and key. */
function* decode([access, refresh, users, keys]: (Row[] | null)[]): Generator<[Kind, TokenRecord]> {
  const user = new Map((users ?? []).map((u) => [u[0], { username: u[1], userDisabled: u[2] }]));
  const domains = new Map((keys ?? []).map((k) => [k[0], k[1]]));
  // A user deleted meanwhile takes its tokens with it (cascade); until then, no name and not disabled.
  const nobody = { username: null, userDisabled: false };
  for (const r of access ?? []) {
    const token = {
      id: r[0],
      kind: r[1],
      clientId: r[2],
      applicationId: r[3],
      keyType: r[4],
      userId: r[5],
      scopes: r[6],
      tokenHash: r[7],
      issuedAt: date(r[8]),
      expiresAt: date(r[9]),
      revokedAt: date(r[10]),
      revokeScheduledAt: date(r[11]),
      ...(r[5] == null ? nobody : (user.get(r[5]) ?? nobody)),
      allowedDomains: r[12] == null ? null : (domains.get(r[12]) ?? null),
    };
    yield ["a", token as AccessTokenRecord];
  }
  for (const r of refresh ?? []) {
    const owner = user.get(r[8]);
    // The refresh token's user is required (an inner join before): none, no token.
    if (!owner) continue;
    const token = {
      id: r[0],
      tokenHash: r[1],
      issuedAt: date(r[2]),
      expiresAt: date(r[3]),
      usedAt: date(r[4]),
      revokedAt: date(r[5]),
      familyRevokedAt: date(r[6]),
      clientId: r[7],
      userId: r[8],
      ...owner,
    };
    yield ["r", token as RefreshTokenRecord];
  }
}

/**
 * Batched reads of tokens by id, the read-side twin of TokenWriter. Lookups that arrive within
 * one turn of the event loop (or while every connection is busy) go out together as one
 * statement, and each caller gets the rows of its own id: under load, N concurrent
 * introspections cost one round trip and one plan instead of 2N.
 */
export class TokenReader {
  private readonly batcher: Batcher<Pending>;

  constructor(
    private readonly database: Database,
    private readonly log: Logger,
    /** Concurrent batches (PGlite has one connection: 1). */
    concurrency: number,
    private readonly onStatement?: (sql: string) => void,
    /** How long a batch smaller than the previous one may wait for more (see Batcher). */
    gatherMs = 0,
  ) {
    this.batcher = new Batcher((batch) => this.flush(batch), { concurrency, maxBatch: MAX_BATCH, gatherMs });
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
      this.onStatement?.(text);
      const [result] = await this.database.prepared<{ rows: (Row[] | null)[] }>(text, params);
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
