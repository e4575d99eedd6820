import type { Tx } from "../db/client.js";
import {
  type AccessTokenRow,
  type NewTokenEvent,
  type TokenEventReason,
  type TokenEventRow,
  type TokenEventType,
  tokenEvents,
} from "../db/schema/index.js";

/**
 * Appends token events. Always called with the transaction that makes the change, so an event
 * exists exactly when its change committed.
 */
export async function appendTokenEvents(tx: Tx, events: NewTokenEvent[]): Promise<TokenEventRow[]> {
  if (events.length === 0) return [];
  return tx.insert(tokenEvents).values(events).returning();
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
