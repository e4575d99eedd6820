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
import { loginAs } from "../support/graphql.js";
import { clientCredentials, createWorld, newClient, type World } from "../support/oauth.js";

const ENV = { SWEEPER_INTERVAL_MS: "100", TOKEN_RETENTION: "1" };

let t: TestApp;
let world: World;

beforeAll(async () => {
  t = await startTestApp({ issuerIsUrl: true, env: ENV });
  world = await createWorld(t);
});
afterEach(disposeCollectors);
afterAll(() => t.stop());

const sample = async (series: string) => (await scrapeMetrics(t)).samples.get(series) ?? 0;

/** Waits until `series` reaches `value`, then checks it stays there a moment. */
async function settles(series: string, value: number): Promise<void> {
  await until(async () => (await sample(series)) >= value, `${series} to reach ${value}`);
  await sleep(150);
  expect(await sample(series)).toBe(value);
}

describe("GET /metrics", () => {
  it("serves Prometheus text with every token event metric described", async () => {
    const scrape = await scrapeMetrics(t);
    expect(scrape.status).toBe(200);
    expect(scrape.contentType).toBe("text/plain; version=0.0.4; charset=utf-8");
    for (const [name, type] of [
      ["token_manager_events_total", "counter"],
      ["token_manager_event_subscribers", "gauge"],
      ["token_manager_event_delivery_lag_seconds", "histogram"],
      ["token_manager_slow_consumers_total", "counter"],
      ["token_manager_sweeper_lag_seconds", "gauge"],
      ["token_manager_sweeper_rows_total", "counter"],
    ]) {
      expect(scrape.text).toContain(`# TYPE ${name} ${type}\n`);
      expect(scrape.text).toMatch(new RegExp(`^# HELP ${name} .+$`, "m"));
    }
    expect(scrape.samples.get("token_manager_slow_consumers_total")).toBe(0);
  });

  it("gauges live subscribers, counting a subscription out as soon as it closes", async () => {
    expect(await sample("token_manager_event_subscribers")).toBe(0);
    const everything = await subscribeEvents(t, world.adminToken);
    // A narrow filter that nothing matches: closing it must not wait for a matching event.
    const narrow = await subscribeEvents(t, world.owner.token, { filter: { types: ["EXPIRED"] } });
    expect(await sample("token_manager_event_subscribers")).toBe(2);
    await narrow.dispose();
    expect(await sample("token_manager_event_subscribers")).toBe(1);
    await everything.dispose();
    expect(await sample("token_manager_event_subscribers")).toBe(0);
  });

  it("counts committed events by type, and the delivery lag of each one delivered", async () => {
    const issued = 'token_manager_events_total{type="ISSUED"}';
    const lagCount = "token_manager_event_delivery_lag_seconds_count";
    // Every ISSUED event so far (the logins of the set-up) was counted, and none delivered yet.
    expect(await sample(issued)).toBe((await storedEvents(t, "type = 'ISSUED'")).length);
    const before = { issued: await sample(issued), lag: await sample(lagCount) };
    const first = await subscribeEvents(t, world.adminToken);
    const second = await subscribeEvents(t, world.adminToken);
    for (let i = 0; i < 3; i++) await loginAs(t, world.owner.username, world.owner.password);
    await until(() => first.events.length === 3 && second.events.length === 3, "both subscribers' events");
    await settles(issued, before.issued + 3);
    expect(await sample('token_manager_events_total{type="REVOKED"}')).toBe(0);
    // Three events, each delivered to two subscribers: six observations.
    await settles(lagCount, before.lag + 6);
    const scrape = await scrapeMetrics(t);
    expect(scrape.samples.get('token_manager_event_delivery_lag_seconds_bucket{le="+Inf"}')).toBe(
      before.lag + 6,
    );
    // Delivered in-process within a second.
    expect(scrape.samples.get('token_manager_event_delivery_lag_seconds_bucket{le="1"}')).toBe(
      before.lag + 6,
    );
    expect(scrape.samples.get("token_manager_event_delivery_lag_seconds_sum")).toBeGreaterThan(0);
  });

  it("reports the sweeper's rows by job and how far behind expiry it announced", async () => {
    const expired = 'token_manager_sweeper_rows_total{job="expired"}';
    const purged = 'token_manager_sweeper_rows_total{job="purged"}';
    expect(await sample(expired)).toBe(0);
    const client = await newClient(world, { validityPeriod: 1 });
    await clientCredentials(world, client);
    await settles(expired, 2);
    const lag = await sample("token_manager_sweeper_lag_seconds");
    expect(lag).toBeGreaterThan(0);
    expect(lag).toBeLessThan(1);
    // TOKEN_RETENTION=1: both rows go a second later, and the purge is counted.
    await settles(purged, 2);
    expect(await sample('token_manager_sweeper_rows_total{job="expiring_soon"}')).toBe(0);
    expect(await sample('token_manager_events_total{type="EXPIRED"}')).toBe(2);
  });
});
