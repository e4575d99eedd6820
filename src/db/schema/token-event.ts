import { sql } from "drizzle-orm";
import { bigserial, index, jsonb, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { keyType, tokenKind } from "./enums.js";

/** The documented list of token event types (DESIGN.md "Subscription tokenEvents"). */
export const TOKEN_EVENT_TYPES = [
  "ISSUED",
  "REFRESHED",
  "REVOKED",
  "EXPIRED",
  "EXPIRING_SOON",
  "KEYS_GENERATED",
  "SECRET_ROTATED",
  "VALIDITY_CHANGED",
] as const;
export type TokenEventType = (typeof TOKEN_EVENT_TYPES)[number];

/** Why a token changed state. */
export const TOKEN_EVENT_REASONS = [
  "LOGIN",
  "CLIENT_REQUEST",
  "ADMIN",
  "OWNER",
  "REGENERATED",
  "GRACE_PERIOD_ENDED",
  "USER_DELETED",
  "USER_DISABLED",
  "PASSWORD_CHANGED",
  "APPLICATION_DELETED",
  "REFRESH_REUSE_DETECTED",
  "ROTATED",
] as const;
export type TokenEventReason = (typeof TOKEN_EVENT_REASONS)[number];

/**
 * Append-only, ordered log of every token lifecycle change; `id` orders events and is the
 * subscription cursor. No foreign keys: history outlives the rows it describes.
 */
export const tokenEvents = pgTable(
  "token_events",
  {
    id: bigserial("id", { mode: "bigint" }).primaryKey(),
    type: text("type").$type<TokenEventType>().notNull(),
    reason: text("reason").$type<TokenEventReason>(),
    occurredAt: timestamp("occurred_at", { withTimezone: true }).notNull().defaultNow(),
    tokenId: uuid("token_id"),
    tokenKind: tokenKind("token_kind"),
    keyType: keyType("key_type"),
    applicationId: uuid("application_id"),
    userId: uuid("user_id"),
    scopes: text("scopes").array(),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    actorId: uuid("actor_id"),
    details: jsonb("details").$type<Record<string, unknown>>(),
  },
  (t) => [
    index().on(t.applicationId, t.id),
    // Events of application tokens have no user: only user events are indexed by user.
    index()
      .on(t.userId, t.id)
      .where(sql`${t.userId} is not null`),
    index().on(t.tokenId),
  ],
);

export type TokenEventRow = typeof tokenEvents.$inferSelect;
export type NewTokenEvent = typeof tokenEvents.$inferInsert;
