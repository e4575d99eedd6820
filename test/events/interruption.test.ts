import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { TestApp } from "../support/app.js";
import { startTestApp } from "../support/app.js";
import { disposeCollectors, sleep, subscribeEvents, until, wideApplication } from "../support/events.js";
import { loginAdmin } from "../support/graphql.js";
import { mustGenerateKeys, revokeTokens } from "../support/keys.js";

let t: TestApp;
let admin: string;
beforeAll(async () => {
  t = await startTestApp();
  admin = await loginAdmin(t);
});
afterEach(disposeCollectors);
afterAll(() => t.stop());

/** client_credentials for a key, optionally narrowed to `scope`. */
async function issue(clientId: string, secret: string, scope?: string) {
  const body = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: clientId,
    client_secret: secret,
  });
  if (scope) body.set("scope", scope);
  const response = await fetch(`${t.url}/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body,
  });
  expect(response.status).toBe(200);
}

describe("live token events", () => {
  it("arrive in id order when some are too large for NOTIFY and are read before they are handed on", async () => {
    const { scopes, app } = await wideApplication(t, admin);
    const keys = await mustGenerateKeys(t, admin, { applicationId: app.id, keyType: "PRODUCTION", scopes });
    for (let i = 0; i < 4; i++) {
      await issue(keys.consumerKey as string, keys.consumerSecret as string, scopes[0]); // a small event
      await issue(keys.consumerKey as string, keys.consumerSecret as string); // a wide one
    }
    const stream = await subscribeEvents(t, admin, { filter: { types: ["REVOKED"] } });
    // The key's first token (all its scopes, wide) and the eight above.
    const { count } = await revokeTokens(t, admin, { applicationId: app.id });
    expect(count).toBe(9);
    await until(() => stream.events.length >= 9);
    await sleep(100);
    const ids = stream.events.map((event) => BigInt(event.id));
    expect(ids).toHaveLength(9);
    expect(ids).toEqual([...ids].sort((x, y) => (x < y ? -1 : 1)));
    // The wide ones carry every scope (read from the log, not cut short).
    expect(stream.events.filter((event) => event.token?.scopes.length === 100)).toHaveLength(5);
  });

  it.runIf(process.env.DATABASE_URL !== undefined)(
    "end with EVENTS_INTERRUPTED when the listening connection is lost (PostgreSQL), so that subscribers resume from their cursor",
    async () => {
      const stream = await subscribeEvents(t, admin);
      // Events committed while no connection listens are never delivered live: the stream must
      // not go on as if nothing were missing.
      await t.app.deps.database.raw(
        "select pg_terminate_backend(pid) from pg_stat_activity where query ilike 'listen%' and datname = current_database()",
      );
      await until(() => stream.errors.length > 0, "the stream to end");
      expect(stream.errors).toEqual([
        [
          expect.objectContaining({
            message: "live events were interrupted: subscribe again with the last id seen as `after`",
            extensions: { code: "EVENTS_INTERRUPTED" },
          }),
        ],
      ]);
    },
  );
});
