import { gql } from "graphql-request";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import {
  disposeCollectors,
  latestEventId,
  sleep,
  subscribeEvents,
  until,
  wideApplication,
} from "../support/events.js";
import {
  createApiAs,
  createApplicationAs,
  createSubscriber,
  loginAdmin,
  SUBSCRIBE,
} from "../support/graphql.js";

const GENERATE = gql`
  mutation($input: GenerateKeysInput!) {
    generateKeys(input: $input) { ... on GenerateKeysPayload { consumerKey consumerSecret token { accessToken token { id } } } }
  }
`;

let t: TestApp;
let admin: string;

/** Subscribes (live once this resolves) and collects events. */
const collect = (token: string, variables: Record<string, unknown> = {}) =>
  subscribeEvents(t, token, variables);

beforeAll(async () => {
  t = await startTestApp({ env: { SWEEPER_INTERVAL_MS: "100" } });
  admin = await loginAdmin(t);
});
afterEach(disposeCollectors);
afterAll(() => t.stop());

async function applicationWithKeys(ownerToken: string, name: string, validityPeriod = 3600) {
  const api = await createApiAs(t.client(admin), {
    name,
    context: `/${name}`,
    version: "v1",
    scopes: [{ name: "read" }],
  });
  const app = await createApplicationAs(t.client(ownerToken), { name });
  await t.client(ownerToken).request(SUBSCRIBE, { input: { applicationId: app.id, apiId: api.id } });
  const { generateKeys } = await t.client(ownerToken).request<any>(GENERATE, {
    input: { applicationId: app.id, keyType: "PRODUCTION", scopes: ["read"], validityPeriod },
  });
  return { app, keys: generateKeys };
}

describe("tokenEvents subscription", () => {
  it("streams KEYS_GENERATED, ISSUED, REVOKED and EXPIRED with their payloads", async () => {
    const stream = await collect(admin, {
      filter: { types: ["KEYS_GENERATED", "ISSUED", "REVOKED", "EXPIRED"] },
    });
    const { app, keys } = await applicationWithKeys(admin, "streamed", 1);
    await until(() => stream.events.length >= 3);
    expect(stream.events.slice(0, 2).map((e) => e.type)).toEqual(["KEYS_GENERATED", "ISSUED"]);
    expect(stream.events[1]).toMatchObject({
      type: "ISSUED",
      applicationId: app.id,
      keyType: "PRODUCTION",
      token: {
        id: keys.token.token.id,
        kind: "APPLICATION",
        keyType: "PRODUCTION",
        applicationId: app.id,
        scopes: ["read"],
      },
    });
    expect(stream.events[2]).toMatchObject({ type: "EXPIRED", token: { id: keys.token.token.id } });
    const ids = stream.events.map((e) => Number(e.id));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
  });

  it("resumes from a cursor with exactly the missed events, in order, then continues live", async () => {
    const first = await collect(admin);
    await applicationWithKeys(admin, "resumed");
    await until(() => first.events.length >= 2);
    const cursor = first.events[0]!.id;
    await first.dispose();
    const missed = await t.app.deps.database.raw<{ id: string }>(
      "select id::text from token_events where id > $1 order by id",
      [cursor],
    );
    const resumed = await collect(admin, { after: cursor });
    await until(() => resumed.events.length >= missed.length);
    expect(resumed.events.map((e) => e.id)).toEqual(missed.map((r) => r.id));
    await loginAdmin(t);
    await until(() => resumed.events.length === missed.length + 1);
    expect(resumed.events.at(-1)).toMatchObject({ type: "ISSUED", reason: "LOGIN" });
    expect(new Set(resumed.events.map((e) => e.id)).size).toBe(resumed.events.length);
  });

  it("replays a subscriber only its own events, chosen by the database, not the whole log", async () => {
    const reader = await createSubscriber(t, admin, "replay-reader");
    const cursor = await latestEventId(t);
    const { app } = await applicationWithKeys(reader.token, "replayed-mine");
    // 600 events of another application (more than a replay page), written straight to the log.
    await t.app.deps.database.raw(
      "insert into token_events (type, token_id, application_id, token_kind) select 'ISSUED', gen_random_uuid(), gen_random_uuid(), 'APPLICATION' from generate_series(1, 600)",
    );
    const mine = await t.app.deps.database.raw<{ id: string }>(
      "select id::text from token_events where id > $1 and (application_id = $2 or user_id = $3) order by token_events.id",
      [cursor, app.id, reader.id],
    );
    expect(mine.length).toBeGreaterThanOrEqual(2);
    t.resetStatements();
    const resumed = await collect(reader.token, { after: cursor });
    await until(() => resumed.events.length >= mine.length);
    await sleep(100);
    expect(resumed.events.map((e) => e.id)).toEqual(mine.map((r) => r.id));
    // One page read the subscriber's events: the others were never read (500 a page).
    expect(
      t.statements.filter((q) => /from "token_events" where \(?"token_events"\."id" >/.test(q)),
    ).toHaveLength(1);
  });

  it("shows a subscriber only its own applications' and its own events", async () => {
    const owner = await createSubscriber(t, admin, "events-owner");
    const other = await createSubscriber(t, admin, "events-other");
    const mine = await collect(owner.token);
    const theirs = await collect(other.token);
    const { app } = await applicationWithKeys(owner.token, "owned-events");
    await until(() => mine.events.length >= 2);
    await sleep(200);
    expect(theirs.events).toEqual([]);
    expect(mine.events.every((e) => e.token === null || e.applicationId === app.id)).toBe(true);
  });

  it("refuses an unauthenticated connection", async () => {
    const stream = await collect("tmat_not-a-token");
    await until(() => stream.errors.length > 0);
    expect(stream.errors[0]).toMatchObject({ code: 4403 });
  });
});

describe("events too large for NOTIFY", () => {
  it("are read from the log and still delivered live, with every scope", async () => {
    const { scopes, app } = await wideApplication(t, admin);
    const stream = await collect(admin, { filter: { types: ["ISSUED"], applicationId: app.id } });
    const { generateKeys } = await t.client(admin).request<any>(GENERATE, {
      input: { applicationId: app.id, keyType: "SANDBOX", scopes },
    });
    await until(() => stream.events.length === 1);
    expect(stream.events[0]).toMatchObject({
      type: "ISSUED",
      token: { id: generateKeys.token.token.id, scopes },
    });
    // The row really was too large for a NOTIFY payload.
    const [row] = await t.app.deps.database.raw<{ size: number }>(
      "select octet_length(row_to_json(e)::text) as size from token_events e where token_id = $1",
      [generateKeys.token.token.id],
    );
    expect(row!.size).toBeGreaterThan(7900);
  });
});
