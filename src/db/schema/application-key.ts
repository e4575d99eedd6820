import { index, integer, pgTable, text, timestamp, unique, uuid } from "drizzle-orm/pg-core";
import { applications } from "./application.js";
import { keyType } from "./enums.js";

/** One per application and key type: the OAuth client (consumer key = client_id). */
export const applicationKeys = pgTable(
  "application_keys",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    applicationId: uuid("application_id")
      .notNull()
      .references(() => applications.id, { onDelete: "cascade" }),
    keyType: keyType("key_type").notNull(),
    consumerKey: text("consumer_key").notNull().unique(),
    /** Empty = every domain (as is the single entry `ALL`). */
    allowedDomains: text("allowed_domains").array().notNull().default([]),
    /** Seconds; null = the current default; negative = never expires. */
    validityPeriod: integer("validity_period"),
    scopes: text("scopes").array().notNull().default([]),
    grantTypes: text("grant_types").array().notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique("application_keys_application_key_type_key").on(t.applicationId, t.keyType),
    // The target of access_tokens' (key, application) foreign key.
    unique("application_keys_id_application_key").on(t.id, t.applicationId),
  ],
);

/** A key may hold several secrets while clients roll over; each is stored only as a keyed hash. */
export const consumerSecrets = pgTable(
  "consumer_secrets",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    keyId: uuid("key_id")
      .notNull()
      .references(() => applicationKeys.id, { onDelete: "cascade" }),
    secretHash: text("secret_hash").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp("expires_at", { withTimezone: true }),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
  },
  (t) => [index().on(t.keyId)],
);

export type ApplicationKeyRow = typeof applicationKeys.$inferSelect;
export type ConsumerSecretRow = typeof consumerSecrets.$inferSelect;
