import { eq } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { apiScopes, subscriptions } from "../db/schema/index.js";
import { ValidationError } from "./errors.js";

/** The scopes an application may be granted: those defined by the APIs it subscribes to. */
export async function subscribedScopes(tx: Tx, applicationId: string): Promise<Set<string>> {
  const rows = await tx
    .selectDistinct({ name: apiScopes.name })
    .from(subscriptions)
    .innerJoin(apiScopes, eq(apiScopes.apiId, subscriptions.apiId))
    .where(eq(subscriptions.applicationId, applicationId));
  return new Set(rows.map((r) => r.name));
}

/** Fails when a requested scope is outside `allowed`; returns the scopes de-duplicated and sorted. */
export function requireScopesWithin(
  requested: readonly string[],
  allowed: Set<string>,
  field: string,
): string[] {
  const unknown = requested.find((s) => !allowed.has(s));
  if (unknown !== undefined) {
    throw new ValidationError(
      field,
      `${field}: scope ${unknown} is not defined by an API the application subscribes to`,
    );
  }
  return [...new Set(requested)].sort();
}
