import { index, pgTable, text, timestamp, unique, uuid } from "drizzle-orm/pg-core";
import { tier, tokenFormat } from "./enums.js";
import { users } from "./user.js";

/** A logical collection of subscribed APIs, owned by one user. */
export const applications = pgTable(
  "applications",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    ownerId: uuid("owner_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    description: text("description"),
    throttlingTier: tier("throttling_tier").notNull().default("Unlimited"),
    tokenFormat: tokenFormat("token_format").notNull().default("OPAQUE"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique("applications_owner_name_key").on(t.ownerId, t.name), index().on(t.createdAt)],
);

export type ApplicationRow = typeof applications.$inferSelect;
