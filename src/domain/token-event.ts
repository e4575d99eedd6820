import { eq, type SQL, sql } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import {
  type AccessTokenRow,
  type NewTokenEvent,
  type TokenEventReason,
  type TokenEventRow,
  type TokenEventType,
  tokenEvents,
} from "../db/schema/index.js";
import type { TokenEventNotice } from "../events/bus.js";

/** The NOTIFY channel every committed token event is announced on. */
export const TOKEN_EVENTS_CHANNEL = "token_events";

/**
 * Event ids are the subscription cursor, so they must follow commit order: were two transactions
 * to commit out of id order, a live subscriber would see 14 before 13, and one resuming after 14
 * would never see 13. Each id is drawn under a transaction-scoped advisory lock: a transaction
 * drawing ids after another waits until that one has committed (NOTIFY already serializes
 * commits, so only the rest of a transaction after its events is held back). Every statement
 * that inserts token events must take this lock before drawing ids.
 */
export const EVENT_ORDER_LOCK = 0x746f6b656e;
const ORDERED_EVENT_ID = sql`(select nextval(pg_get_serial_sequence('token_events', 'id')) from pg_advisory_xact_lock(${sql.raw(String(EVENT_ORDER_LOCK))}))`;

/**
 * Appends token events and announces them, in one statement of the caller's transaction. NOTIFY
 * is transactional: listeners (on every instance) hear of an event exactly when its change
 * committed, and never of a rolled-back one. The payload is the event row as JSON; one too large
 * for NOTIFY (8000 bytes) is announced by id only (`truncated`), for listeners to read.
 */
export async function appendTokenEvents(tx: Tx, events: NewTokenEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx.execute(announcingInsert(tx, events));
}

/**
 * One statement that inserts events and NOTIFYs each, optionally after other data-modifying
 * CTEs (`before`, e.g. the token rows themselves): a single round trip, atomic on its own.
 */
export function announcingInsert(tx: Tx, events: NewTokenEvent[], before?: SQL): SQL {
  const insert = tx
    .insert(tokenEvents)
    .values(events.map((event) => ({ ...event, id: ORDERED_EVENT_ID })))
    .returning();
  return sql`
    with ${before ? sql`${before}, ` : sql``}inserted as (${insert.getSQL()})
    select pg_notify(${TOKEN_EVENTS_CHANNEL}, case
      when octet_length(row_to_json(inserted)::text) < 7900 then row_to_json(inserted)::text
      else json_build_object('id', inserted.id, 'truncated', true)::text end)
    from inserted order by inserted.id`;
}

/** The event describing `token` changing state. */
export function tokenEventFor(
  token: AccessTokenRow,
  type: TokenEventType,
  reason: TokenEventReason | null,
  actorId: string | null = null,
): NewTokenEvent {
  return {
    type,
    reason,
    tokenId: token.id,
    tokenKind: token.kind,
    keyType: token.keyType,
    applicationId: token.applicationId,
    userId: token.userId,
    scopes: token.scopes,
    expiresAt: token.expiresAt,
    actorId,
  };
}

/** A token event as the API shows it, from a row or from a live notice alike. */
export interface TokenEventRecord {
  readonly id: string;
  readonly type: TokenEventType;
  readonly reason: TokenEventReason | null;
  readonly occurredAt: Date;
  readonly tokenId: string | null;
  readonly tokenKind: "APPLICATION" | "USER" | null;
  readonly keyType: "PRODUCTION" | "SANDBOX" | null;
  readonly applicationId: string | null;
  readonly userId: string | null;
  readonly scopes: readonly string[] | null;
  readonly expiresAt: Date | null;
}

export function fromRow(row: TokenEventRow): TokenEventRecord {
  return {
    id: row.id.toString(),
    type: row.type,
    reason: row.reason,
    occurredAt: row.occurredAt,
    tokenId: row.tokenId,
    tokenKind: row.tokenKind,
    keyType: row.keyType,
    applicationId: row.applicationId,
    userId: row.userId,
    scopes: row.scopes,
    expiresAt: row.expiresAt,
  };
}

/** A NOTIFY payload as a record; null for one announced by id only (callers read it instead). */
export function fromNotice(notice: TokenEventNotice): TokenEventRecord | null {
  if (notice.truncated) return null;
  return {
    id: String(notice.id),
    type: notice.type,
    reason: notice.reason,
    occurredAt: new Date(notice.occurred_at),
    tokenId: notice.token_id,
    tokenKind: notice.token_kind,
    keyType: notice.key_type,
    applicationId: notice.application_id,
    userId: notice.user_id,
    scopes: notice.scopes,
    expiresAt: notice.expires_at ? new Date(notice.expires_at) : null,
  };
}

/**
 * Runs `work` (a committed transaction) and waits until this instance has heard every event it
 * wrote, so that caches here reflect a revocation before the caller gets its answer.
 */
export async function thenSynced<T>(bus: { sync(): Promise<void> }, work: () => Promise<T>): Promise<T> {
  const result = await work();
  await bus.sync();
  return result;
}

/** One event by id (for notices that carried only the id). */
export async function readTokenEvent(db: Tx, id: number): Promise<TokenEventRecord | null> {
  const [row] = await db
    .select()
    .from(tokenEvents)
    .where(eq(tokenEvents.id, BigInt(id)));
  return row ? fromRow(row) : null;
}
