import { sql } from "drizzle-orm";
import { boolean, jsonb, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";

/** Settings admins change at run time, seeded from the environment on first start. */
export const settings = pgTable("settings", {
  key: text("key").primaryKey(),
  value: jsonb("value").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/** Service secrets generated on first start when the environment gives none (PostgreSQL only). */
export const serviceSecrets = pgTable("service_secrets", {
  name: text("name").primaryKey(),
  value: text("value").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

/** JWT signing keys: one active, retired ones kept in the JWKS until the JWTs they signed expire. */
export const signingKeys = pgTable(
  "signing_keys",
  {
    kid: text("kid").primaryKey(),
    alg: text("alg").notNull(),
    publicJwk: jsonb("public_jwk").notNull(),
    /** The private JWK, AES-256-GCM under the service key ring's key `encryptionKeyId`. */
    privateJwkCiphertext: text("private_jwk_ciphertext").notNull(),
    encryptionKeyId: text("encryption_key_id").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    retiredAt: timestamp("retired_at", { withTimezone: true }),
    /**
     * Once retired, the key stays in the JWKS until then: at least the latest `exp` it signed
     * (raised before or as it signs, never lowered), `infinity` when it signed a JWT without one.
     */
    publishUntil: timestamp("publish_until", { withTimezone: true }),
    /**
     * Retired by an instance that could not open it (its key ring lacks the encryption key): that
     * instance cannot open what this key's ring seals either (see signing-key.ts).
     */
    retiredUnusable: boolean("retired_unusable").notNull().default(false),
  },
  // At most one active key, whichever instance rotates.
  (t) => [uniqueIndex("signing_keys_one_active").on(sql`(true)`).where(sql`${t.retiredAt} is null`)],
);
