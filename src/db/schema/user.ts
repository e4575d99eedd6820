import { sql } from "drizzle-orm";
import { pgTable, text, timestamp, uniqueIndex, uuid } from "drizzle-orm/pg-core";

export type Role = "admin" | "subscriber";

/** A user store domain (WSO2 "user store"): its users' tokens live in their own partition. */
export const userStoreDomains = pgTable("user_store_domains", {
  name: text("name").primaryKey(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
});

export const users = pgTable(
  "users",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    username: text("username").notNull(),
    /** scrypt hash in PHC-like form; never the password. */
    passwordHash: text("password_hash").notNull(),
    roles: text("roles").array().$type<Role[]>().notNull().default(sql`'{subscriber}'::text[]`),
    userStoreDomain: text("user_store_domain")
      .notNull()
      .default("PRIMARY")
      .references(() => userStoreDomains.name),
    disabledAt: timestamp("disabled_at", { withTimezone: true }),
    passwordChangedAt: timestamp("password_changed_at", { withTimezone: true }).notNull().defaultNow(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("users_username_key").on(sql`lower(${t.username})`)],
);

export type UserRow = typeof users.$inferSelect;
