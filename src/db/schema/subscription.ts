import { index, pgTable, timestamp, unique, uuid } from "drizzle-orm/pg-core";
import { apis } from "./api.js";
import { applications } from "./application.js";
import { tier } from "./enums.js";

/** Application × API × tier: a token of the application is valid for every API it subscribes to. */
export const subscriptions = pgTable(
  "subscriptions",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    applicationId: uuid("application_id")
      .notNull()
      .references(() => applications.id, { onDelete: "cascade" }),
    apiId: uuid("api_id")
      .notNull()
      .references(() => apis.id, { onDelete: "cascade" }),
    tier: tier("tier").notNull().default("Unlimited"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique("subscriptions_application_api_key").on(t.applicationId, t.apiId), index().on(t.apiId)],
);

export type SubscriptionRow = typeof subscriptions.$inferSelect;
