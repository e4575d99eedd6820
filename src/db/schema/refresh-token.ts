import { sql } from "drizzle-orm";
import { index, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { applicationKeys } from "./application-key.js";
import { users } from "./user.js";

/** A rotation family: every refresh token descended from one login or password grant. */
export const refreshTokenFamilies = pgTable(
  "refresh_token_families",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    applicationKeyId: uuid("application_key_id").references(() => applicationKeys.id, {
      onDelete: "cascade",
    }),
    clientId: text("client_id").notNull(),
    userStoreDomain: text("user_store_domain").notNull(),
    /**
     * The scopes the resource owner granted when the family started (RFC 6749 §6: a refresh may
     * narrow them, never widen them). Null for families started before it was recorded.
     */
    scopes: text("scopes").array(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    revokeReason: text("revoke_reason"),
  },
  (t) => [
    index().on(t.userId),
    // The sweeper's purge of revoked families.
    index("refresh_token_families_revoked_at_idx")
      .on(t.revokedAt)
      .where(sql`${t.revokedAt} is not null`),
  ],
);

/** One refresh token of a family; each use rotates it (`usedAt`, `replacedById`). */
export const refreshTokens = pgTable(
  "refresh_tokens",
  {
    id: uuid("id").primaryKey(),
    familyId: uuid("family_id")
      .notNull()
      .references(() => refreshTokenFamilies.id, { onDelete: "cascade" }),
    accessTokenId: uuid("access_token_id").notNull(),
    tokenHash: text("token_hash").notNull(),
    tokenCiphertext: text("token_ciphertext"),
    encryptionKeyId: text("encryption_key_id"),
    issuedAt: timestamp("issued_at", { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    usedAt: timestamp("used_at", { withTimezone: true }),
    replacedById: uuid("replaced_by_id"),
    /**
     * The pair this token was exchanged for, sealed with the service key ring, kept only for the
     * short retry window (a lost response gets the same pair again), then cleared by the sweeper.
     */
    retryCiphertext: text("retry_ciphertext"),
    retryKeyId: text("retry_key_id"),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [
    index().on(t.familyId),
    index().on(t.accessTokenId),
    // The sweeper's work lists: tokens to purge (expired, revoked or used long enough ago), and
    // retry pairs to clear once their window has passed.
    index("refresh_tokens_expires_at_idx").on(t.expiresAt),
    index("refresh_tokens_revoked_at_idx").on(t.revokedAt).where(sql`${t.revokedAt} is not null`),
    index("refresh_tokens_used_at_idx").on(t.usedAt).where(sql`${t.usedAt} is not null`),
    index("refresh_tokens_retry_pair_idx").on(t.usedAt).where(sql`${t.retryCiphertext} is not null`),
  ],
);

export type RefreshTokenFamilyRow = typeof refreshTokenFamilies.$inferSelect;
export type RefreshTokenRow = typeof refreshTokens.$inferSelect;
