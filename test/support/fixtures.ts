import { randomUUID } from "node:crypto";
import type { TestApp } from "./app.js";

/** A name no other test uses (usernames, application names, API contexts). */
export const uniqueName = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** A well-formed UUID that names nothing. */
export const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";

/**
 * Stores an active application access token row straight into the database (its hash is a
 * placeholder, so it can never be presented), to check that deletions revoke application tokens
 * without going through key generation.
 */
export async function insertApplicationToken(t: TestApp, applicationId: string): Promise<string> {
  const id = randomUUID();
  await t.app.deps.database.raw(
    `insert into access_tokens (id, user_store_domain, kind, client_id, application_id, key_type, token_hash)
     values ($1, 'PRIMARY', 'APPLICATION', 'test-client', $2, 'PRODUCTION', 'placeholder')`,
    [id, applicationId],
  );
  return id;
}
