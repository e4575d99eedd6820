import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { READER_APPLICATION_NAME } from "../../src/db/client.js";
import {
  clientCredentials,
  clientCredentialsRequest,
  introspectionRequest,
  revocationRequest,
  useOAuthWorld,
} from "../support/oauth.js";

/** A request that settles within `ms`, or "hung". */
const within = <T>(ms: number, request: Promise<T>) =>
  Promise.race([request, new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), ms))]);

/**
 * The statuses a request gives until it succeeds (at most `ms` in all, each try at most 5 s): a database
 * restart or failover may fail a request in flight, but must never leave one hanging or the
 * service unable to answer once the database is back.
 */
async function firstSuccess(ms: number, attempt: () => Promise<Response>): Promise<string[]> {
  const seen: string[] = [];
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const response = await within(5_000, attempt());
    if (response === "hung") seen.push("hung");
    else if (response.status === 200) return [...seen, "200"];
    else seen.push(String(response.status));
  }
  return seen;
}

describe.runIf(process.env.DATABASE_URL !== undefined)(
  "every database connection terminated (PostgreSQL restart or failover)",
  () => {
    const f = useOAuthWorld();

    it("leaves no request hanging: introspection, issue and revocation work again at once", async () => {
      const { t, world, c } = f;
      const { access_token } = await clientCredentials(world, c);
      expect((await (await introspectionRequest(world, c, access_token)).json()).active).toBe(true);
      const admin = postgres(t.databaseUrl as string, { max: 1, onnotice: () => {} });
      try {
        // What a restart does to each backend: 57P01, then the connection closes.
        const killed = await admin<{ name: string; terminated: boolean }[]>`
        select application_name as name, pg_terminate_backend(pid) as terminated from pg_stat_activity
        where datname = current_database() and pid <> pg_backend_pid()`;
        expect(killed.every((k) => k.terminated)).toBe(true);
        expect(new Set(killed.map((k) => k.name))).toEqual(
          new Set(["token-manager", READER_APPLICATION_NAME, "token-manager-pulse"]),
        );
      } finally {
        await admin.end();
      }
      // Introspection reads (the client's record on the pool, the token on the reader's own
      // connection); a read on a lost connection is read again, so no error reaches the client.
      expect(await firstSuccess(10_000, () => introspectionRequest(world, c, access_token))).toEqual(["200"]);
      for (let i = 0; i < 3; i++) {
        const answer = await within(5_000, introspectionRequest(world, c, access_token));
        expect(answer === "hung" ? answer : (await answer.json()).active).toBe(true);
      }
      // A write on a lost connection is not repeated (it may have committed): at most one 503.
      const writeAnswers = [["200"], ["503", "200"]];
      expect(writeAnswers).toContainEqual(
        await firstSuccess(10_000, () => clientCredentialsRequest(world, c)),
      );
      expect(writeAnswers).toContainEqual(
        await firstSuccess(10_000, () => revocationRequest(world, c, access_token)),
      );
      const after = await within(5_000, introspectionRequest(world, c, access_token));
      expect(after === "hung" ? after : await after.json()).toEqual({ active: false });
      // The event stream is back too (its LISTEN connection was among those terminated).
      const deadline = Date.now() + 10_000;
      while (!t.app.deps.bus.connected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(t.app.deps.bus.connected).toBe(true);
    });
  },
);
