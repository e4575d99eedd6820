import { once } from "node:events";
import type { Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { sweep } from "../../src/domain/sweeper.js";
import { startTestApp, type TestApp } from "../support/app.js";
import {
  disposeCollectors,
  hubSubscribers,
  latestEventId,
  scrapeMetrics,
  storedEvents,
  subscribeEvents,
  until,
} from "../support/events.js";
import { createWorld, newClient, postForm, type TestClient, type World } from "../support/oauth.js";

/**
 * A queue of 20 events per subscriber, far fewer than one sweep announces at once; the socket may
 * hold the default 1 MiB unsent. Loopback TCP buffers hold megabytes, so the slow client asks for
 * a heavy event (the token snapshot 150 times, ~40 kB) to fill them with a few hundred events;
 * the limits below only admit that query.
 */
const ENV = {
  EVENT_QUEUE_LIMIT: "20",
  // Over the limit is a verdict at once here (the grace has its own unit test).
  EVENT_SLOW_CONSUMER_GRACE_MS: "0",
  GRAPHQL_MAX_ALIASES: "200",
  GRAPHQL_MAX_COST: "100000",
  GRAPHQL_MAX_TOKENS: "5000",
};
const HEAVY = `subscription Heavy { tokenEvents { id ${Array.from(
  { length: 150 },
  (_, i) => `t${i}: token { id kind keyType applicationId userId scopes expiresAt }`,
).join(" ")} } }`;
const EVENTS = 300;
/** Tokens expiring at once: three sweeper transactions of up to 1,000 events each. */
const BURST = 2500;

let t: TestApp;
let world: World;

beforeAll(async () => {
  t = await startTestApp({ issuerIsUrl: true, env: ENV });
  world = await createWorld(t);
});
/** Raw sockets still open: terminated after each test, so that a failure never stalls the app's stop. */
const rawSockets = new Set<WebSocket>();
afterEach(async () => {
  for (const socket of rawSockets) socket.terminate();
  rawSockets.clear();
  await disposeCollectors();
});
/** Apps started by a single test. */
const apps: TestApp[] = [];
afterAll(async () => {
  for (const app of apps) await app.stop();
  await t.stop();
});

interface Message {
  type: string;
  id?: string;
  payload?: { data?: { tokenEvents: { id: string } } };
}

/** A graphql-transport-ws client spoken by hand over `ws`, so that it can stop reading its socket. */
async function rawSubscriber(token: string, query: string) {
  const socket = new WebSocket(t.graphqlUrl.replace(/^http/, "ws"), "graphql-transport-ws");
  rawSockets.add(socket);
  const messages: Message[] = [];
  socket.on("message", (data) => messages.push(JSON.parse(String(data)) as Message));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.on("close", (code, reason) => resolve({ code, reason: String(reason) })),
  );
  await once(socket, "open");
  socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
  await until(() => messages.some((m) => m.type === "connection_ack"), "connection_ack");
  socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query } }));
  /** The TCP socket under the WebSocket: pausing it stops reading, as a stalled client would. */
  const tcp = (socket as unknown as { _socket: Socket })._socket;
  return {
    messages,
    closed,
    pause: () => tcp.pause(),
    resume: () => tcp.resume(),
    received: () => messages.filter((m) => m.type === "next").map((m) => m.payload!.data!.tokenEvents.id),
  };
}

/**
 * BURST rows as the token writer makes them, for `client`, already expired (the next sweep
 * announces them), their hashes tagged `<tag>-…`.
 */
async function insertExpiredTokens(client: TestClient, tag: string, app: TestApp = t): Promise<void> {
  await app.app.deps.database.raw(
    `insert into access_tokens (id, user_store_domain, kind, format, client_id, application_id,
       application_key_id, key_type, scopes, token_hash, issued_at, expires_at)
     select gen_random_uuid(), 'PRIMARY', 'APPLICATION', 'OPAQUE', $1, $2::uuid, $3::uuid, 'PRODUCTION',
       '{read}', $5 || '-' || i || '-' || md5(random()::text), now() - interval '1 hour',
       now() - interval '1 second'
     from generate_series(1, $4::int) as i`,
    [client.clientId, client.applicationId, client.keyId, BURST, tag],
  );
}

describe("slow consumers", () => {
  it("cuts off a subscriber that stops reading (4429) while a fast one receives every event in order", async () => {
    const client = await newClient(world);
    const fast = await subscribeEvents(t, world.adminToken);
    const slow = await rawSubscriber(world.adminToken, HEAVY);
    await until(() => hubSubscribers(t) === 2, "both subscriptions to go live");
    const cursor = await latestEventId(t);
    slow.pause();

    for (let sent = 0; sent < EVENTS; sent += 10) {
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const response = await postForm(t, "/token", client, "grant_type=client_credentials");
          expect(response.status).toBe(200);
          await response.arrayBuffer();
        }),
      );
    }
    const stored = await storedEvents(t, `id > ${cursor}`);
    expect(stored.length).toBe(EVENTS);
    await until(() => fast.events.length >= EVENTS, "the fast subscriber's events", 10_000);
    expect(fast.events).toEqual(stored);
    expect(fast.errors).toEqual([]);

    // The server dropped the slow subscription as soon as it fell too far behind.
    expect(hubSubscribers(t)).toBe(1);
    const { samples } = await scrapeMetrics(t);
    expect(samples.get("token_manager_slow_consumers_total")).toBe(1);

    // Once it reads again, it finds what was sent before the cut-off, without a gap, then the close.
    slow.resume();
    expect(await slow.closed).toEqual({ code: 4429, reason: "slow consumer: too far behind" });
    const delivered = slow.received();
    expect(delivered.length).toBeGreaterThan(0);
    expect(delivered.length).toBeLessThan(EVENTS);
    expect(delivered).toEqual(stored.slice(0, delivered.length).map((e) => e.id));
  });

  it("keeps a subscriber that reads as fast as events come through a sweep's burst of thousands", async () => {
    const client = await newClient(world);
    const before = (await scrapeMetrics(t)).samples.get("token_manager_slow_consumers_total") ?? 0;
    const fast = await subscribeEvents(t, world.adminToken, {
      filter: { applicationId: client.applicationId, types: ["EXPIRED"] },
    });
    // Rows as the token writer makes them, already expired: the next sweep announces them all,
    // each transaction's thousand events reaching the hub in one go, far more than the queue limit.
    await insertExpiredTokens(client, "burst");
    await until(() => fast.events.length >= BURST || fast.errors.length > 0, "the burst", 30_000);

    expect(fast.errors).toEqual([]);
    expect(fast.closes).toEqual([]);
    expect(fast.events).toEqual(
      await storedEvents(t, "application_id = $1 and type = 'EXPIRED'", [client.applicationId]),
    );
    expect(fast.events.length).toBe(BURST);
    expect(hubSubscribers(t)).toBe(1);
    expect((await scrapeMetrics(t)).samples.get("token_manager_slow_consumers_total")).toBe(before);
  });

  it("lets the event loop turn between a sweep's statements, so sockets drain while it works", async () => {
    // An app of its own whose sweeper does not run by itself: on PostgreSQL a background sweep
    // running beside this one would take (and count) some of the rows.
    const quiet = await startTestApp({ issuerIsUrl: true, env: { SWEEPER_INTERVAL_MS: "3600000" } });
    apps.push(quiet);
    const client = await newClient(await createWorld(quiet));
    await insertExpiredTokens(client, "turns", quiet);
    // Embedded PGlite answers each statement synchronously: without a yield, a whole sweep (three
    // batches here, then the other jobs) runs in one turn, and no socket is written meanwhile.
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns += 1;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    await sweep(quiet.app.deps);
    ticking = false;
    // At least two between the expiry batches (2,500 rows, 1,000 a batch), one after each later job.
    expect(turns).toBeGreaterThanOrEqual(5);
    const [left] = await quiet.app.deps.database.raw<{ n: number }>(
      "select count(*)::int as n from access_tokens where token_hash like 'turns-%' and expired_notified_at is null",
    );
    expect(left?.n).toBe(0);
  });
});
