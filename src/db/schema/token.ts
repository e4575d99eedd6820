import { sql } from "drizzle-orm";
import { foreignKey, index, pgTable, primaryKey, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { applicationKeys } from "./application-key.js";
import { keyType, tokenFormat, tokenKind } from "./enums.js";
import { users } from "./user.js";

/**
 * Access tokens. List-partitioned by user store domain (the seeds' user token partitioning):
 * the partitioned DDL is the hand-written migration beside the generated ones, so the primary key
 * includes the partition key. The table never holds a usable token: `tokenHash` is a keyed hash
 * of the value, `tokenCiphertext` (TOKEN_PERSISTENCE=encrypt) is AES-256-GCM under `encryptionKeyId`.
 */
export const accessTokens = pgTable(
  "access_tokens",
  {
    id: uuid("id").notNull(),
    userStoreDomain: text("user_store_domain").notNull(),
    kind: tokenKind("kind").notNull(),
    format: tokenFormat("format").notNull().default("OPAQUE"),
    /** The OAuth client that holds the token (a consumer key, or `console` for the built-in client). */
    clientId: text("client_id").notNull(),
    /**
     * Set with `applicationKeyId`: one foreign key on the pair (below) holds both to a key of that
     * application, so ownership checks on `applicationId` can trust it, for one check per inserted
     * token (the hottest write there is) instead of one per column.
     */
    applicationId: uuid("application_id"),
    applicationKeyId: uuid("application_key_id"),
    keyType: keyType("key_type"),
    userId: uuid("user_id").references(() => users.id, { onDelete: "cascade" }),
    refreshFamilyId: uuid("refresh_family_id"),
    scopes: text("scopes").array().notNull().default([]),
    tokenHash: text("token_hash").notNull(),
    tokenCiphertext: text("token_ciphertext"),
    encryptionKeyId: text("encryption_key_id"),
    issuedAt: timestamp("issued_at", { withTimezone: true }).notNull().defaultNow(),
    /** Null = never expires. */
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    revokeReason: text("revoke_reason"),
    /** A regenerated token stays valid until then (grace period); the sweeper revokes it. */
    revokeScheduledAt: timestamp("revoke_scheduled_at", { withTimezone: true }),
    expiringSoonNotifiedAt: timestamp("expiring_soon_notified_at", { withTimezone: true }),
    expiredNotifiedAt: timestamp("expired_notified_at", { withTimezone: true }),
  },
  (t) => [
    primaryKey({ columns: [t.id, t.userStoreDomain] }),
    // Cascades from the application through its keys.
    foreignKey({
      name: "access_tokens_application_key_fk",
      columns: [t.applicationKeyId, t.applicationId],
      foreignColumns: [applicationKeys.id, applicationKeys.applicationId],
    }).onDelete("cascade"),
    // Lookups by id alone use the primary key, whose index leads with id.
    index("access_tokens_application_key_idx").on(t.applicationKeyId),
    // Application tokens have no user: only user tokens are indexed by user.
    index("access_tokens_user_idx")
      .on(t.userId)
      .where(sql`${t.userId} is not null`),
    index("access_tokens_expires_at_idx").on(t.expiresAt),
    // The sweeper's work list: expiring tokens not yet announced.
    index("access_tokens_unannounced_expiry_idx")
      .on(t.expiresAt)
      .where(sql`${t.expiredNotifiedAt} is null and ${t.revokedAt} is null`),
    // The sweeper's other work lists, partial so that issuing a token adds nothing to them:
    // grace periods to end, and revoked rows to purge (expired ones go by expires_at).
    index("access_tokens_grace_period_idx")
      .on(t.revokeScheduledAt)
      .where(sql`${t.revokeScheduledAt} is not null and ${t.revokedAt} is null`),
    index("access_tokens_revoked_at_idx").on(t.revokedAt).where(sql`${t.revokedAt} is not null`),
  ],
);

export type AccessTokenRow = typeof accessTokens.$inferSelect;
