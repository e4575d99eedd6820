import { sql } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import {
  type AccessTokenRow,
  type NewTokenEvent,
  type TokenEventReason,
  type TokenEventType,
  tokenEvents,
} from "../db/schema/index.js";

/** The NOTIFY channel every committed token event is announced on. */
export const TOKEN_EVENTS_CHANNEL = "token_events";

/**
 * Appends token events and announces them, in one statement of the caller's transaction. NOTIFY
 * is transactional: listeners (on every instance) hear of an event exactly when its change
 * committed, and never of a rolled-back one. The payload is the event row as JSON; one too large
 * for NOTIFY (8000 bytes) is announced by id only (`truncated`), for listeners to read.
 */
export async function appendTokenEvents(tx: Tx, events: NewTokenEvent[]): Promise<void> {
  if (events.length === 0) return;
  const insert = tx.insert(tokenEvents).values(events).returning();
  await tx.execute(sql`
    with inserted as (${insert.getSQL()})
    select pg_notify(${TOKEN_EVENTS_CHANNEL}, case
      when octet_length(row_to_json(inserted)::text) < 7900 then row_to_json(inserted)::text
      else json_build_object('id', inserted.id, 'truncated', true)::text end)
    from inserted order by inserted.id`);
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
