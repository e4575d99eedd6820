import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import {
  disposeCollectors,
  scrapeMetrics,
  sleep,
  storedEvents,
  subscribeEvents,
  until,
} from "../support/events.js";
import {
  createWorld,
  idOf,
  newClient,
  postForm,
  revoke,
  type TestClient,
  type World,
} from "../support/oauth.js";

const ON_POSTGRES = Boolean(process.env.DATABASE_URL);
const ENV = { SWEEPER_INTERVAL_MS: "100" };
const TOKENS = 200;

/** Shown beside each skipped test: PGlite is embedded in one process, so two instances cannot share it. */
const NEEDS_POSTGRES = "needs PostgreSQL (DATABASE_URL): PGlite cannot be shared by two instances";

describe("two instances on one database (PostgreSQL only)", () => {
  let a: TestApp;
  let b: TestApp;
  let world: World;

  beforeAll(async () => {
    if (!ON_POSTGRES) return;
    a = await startTestApp({ issuerIsUrl: true, env: ENV });
    b = await startTestApp({ databaseUrl: a.databaseUrl, env: ENV });
    world = await createWorld(a);
  });
  afterEach(disposeCollectors);
  afterAll(async () => {
    // B does not own the database; A drops it.
    await b?.stop();
    await a?.stop();
  });

  /** client_credentials on instance `t`; returns the token value. */
  async function issueOn(t: TestApp, client: TestClient): Promise<string> {
    const response = await postForm(t, "/token", client, "grant_type=client_credentials");
    const body = (await response.json()) as { access_token: string };
    expect(response.status).toBe(200);
    return body.access_token;
  }

  it("delivers a revocation made through instance A to a subscriber on instance B, and the reverse", async (ctx) => {
    ctx.skip(!ON_POSTGRES, NEEDS_POSTGRES);
    const client = await newClient(world);
    const filter = { applicationId: client.applicationId, types: ["ISSUED", "REVOKED"] };
    const onA = await subscribeEvents(a, world.adminToken, { filter });
    const onB = await subscribeEvents(b, world.adminToken, { filter });
    const value = await issueOn(b, client);
    await revoke(world, client, value);
    const stored = await storedEvents(a, "token_id = $1", [idOf(value)]);
    expect(stored.map((e) => [e.type, e.reason])).toEqual([
      ["ISSUED", "CLIENT_REQUEST"],
      ["REVOKED", "CLIENT_REQUEST"],
    ]);
    for (const stream of [onA, onB]) {
      await until(() => stream.events.length >= 2, "both events on each instance");
    }
    await sleep(100);
    expect(onB.events).toEqual(stored);
    expect(onA.events).toEqual(stored);
  });

  it("turns each expired token into exactly one EXPIRED event with both sweepers running", async (ctx) => {
    ctx.skip(!ON_POSTGRES, NEEDS_POSTGRES);
    const client = await newClient(world, { validityPeriod: 1 });
    const filter = { applicationId: client.applicationId, types: ["EXPIRED"] };
    const onA = await subscribeEvents(a, world.adminToken, { filter });
    const onB = await subscribeEvents(b, world.adminToken, { filter });
    for (let sent = 0; sent < TOKENS; sent += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, i) => issueOn(i % 2 ? a : b, client)));
    }
    const issued = (await storedEvents(a, "application_id = $1 and type = 'ISSUED'", [client.applicationId]))
      .map((e) => e.token!.id)
      .sort();
    expect(issued.length).toBe(TOKENS + 1);

    for (const stream of [onA, onB]) {
      await until(() => stream.events.length >= issued.length, "every EXPIRED on each instance", 15_000);
    }
    // Several more rounds of both sweepers: still one event per token.
    await sleep(500);
    const perToken = await a.app.deps.database.raw<{ token_id: string; events: number }>(
      `select token_id, count(*)::int as events from token_events
         where application_id = $1 and type = 'EXPIRED' group by token_id order by token_id`,
      [client.applicationId],
    );
    expect(perToken).toEqual(issued.map((token_id) => ({ token_id, events: 1 })));
    for (const stream of [onA, onB]) {
      expect(stream.events.map((e) => e.token!.id).sort()).toEqual(issued);
    }
    // Between them, the two sweepers announced each token once.
    const swept = 'token_manager_sweeper_rows_total{job="expired"}';
    const counts = [(await scrapeMetrics(a)).samples.get(swept), (await scrapeMetrics(b)).samples.get(swept)];
    expect(counts[0]! + counts[1]!).toBe(issued.length);
  });
});
