import { index, pgTable, primaryKey, text, timestamp, unique, uuid } from "drizzle-orm/pg-core";
import { users } from "./user.js";

/** An API published on the platform, addressed by context + version (e.g. `/twitter` `1.0.0`). */
export const apis = pgTable(
  "apis",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    name: text("name").notNull(),
    context: text("context").notNull(),
    version: text("version").notNull(),
    description: text("description"),
    createdBy: uuid("created_by").references(() => users.id, { onDelete: "set null" }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique("apis_context_version_key").on(t.context, t.version)],
);

/** The OAuth scopes an API defines. */
export const apiScopes = pgTable(
  "api_scopes",
  {
    apiId: uuid("api_id")
      .notNull()
      .references(() => apis.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    description: text("description"),
  },
  (t) => [primaryKey({ columns: [t.apiId, t.name] })],
);

/** A resource of an API: method + path pattern, and the scopes a caller must hold. */
export const apiResources = pgTable(
  "api_resources",
  {
    id: uuid("id").primaryKey().defaultRandom(),
    apiId: uuid("api_id")
      .notNull()
      .references(() => apis.id, { onDelete: "cascade" }),
    method: text("method").notNull(),
    pathPattern: text("path_pattern").notNull(),
    scopes: text("scopes").array().notNull().default([]),
  },
  (t) => [index("api_resources_api_id_idx").on(t.apiId), unique().on(t.apiId, t.method, t.pathPattern)],
);

export type ApiRow = typeof apis.$inferSelect;
export type ApiScopeRow = typeof apiScopes.$inferSelect;
export type ApiResourceRow = typeof apiResources.$inferSelect;
