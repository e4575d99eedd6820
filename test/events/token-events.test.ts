import { gql } from "graphql-request";
import { type Client, createClient } from "graphql-ws";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startTestApp, type TestApp } from "../support/app.js";
import {
  createApiAs,
  createApplicationAs,
  createSubscriber,
  loginAdmin,
  SUBSCRIBE,
} from "../support/graphql.js";

const SUBSCRIPTION = `subscription($after: ID, $filter: TokenEventFilter) {
  tokenEvents(after: $after, filter: $filter) {
    id type reason applicationId keyType
    token { id kind keyType applicationId userId scopes expiresAt }
  }
}`;

const GENERATE = gql`
  mutation($input: GenerateKeysInput!) {
    generateKeys(input: $input) { ... on GenerateKeysPayload { consumerKey consumerSecret token { accessToken token { id } } } }
  }
`;

interface Received {
  id: string;
  type: string;
  reason: string | null;
  token: { id: string } | null;
}

let t: TestApp;
let admin: string;
const clients: Client[] = [];

/** Subscribes and collects events; resolves `ready` once the server acknowledged the subscription. */
function collect(token: string, variables: Record<string, unknown> = {}) {
  const events: Received[] = [];
  const errors: unknown[] = [];
  const client = createClient({
    url: t.graphqlUrl.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  clients.push(client);
  client.subscribe<{ tokenEvents: Received }>(
    { query: SUBSCRIPTION, variables },
    {
      next: (v) => v.data && events.push(v.data.tokenEvents),
      error: (e) => errors.push(e),
      complete: () => {},
    },
  );
  return { events, errors, client };
}

const until = async (check: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
};

beforeAll(async () => {
  t = await startTestApp({ env: { SWEEPER_INTERVAL_MS: "100" } });
  admin = await loginAdmin(t);
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});
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
  const { generateKeys } = await t
    .client(ownerToken)
    .request<any>(GENERATE, {
      input: { applicationId: app.id, keyType: "PRODUCTION", scopes: ["read"], validityPeriod },
    });
  return { app, keys: generateKeys };
}

describe("tokenEvents subscription", () => {
  it("streams KEYS_GENERATED, ISSUED, REVOKED and EXPIRED with their payloads", async () => {
    const stream = collect(admin, { filter: { types: ["KEYS_GENERATED", "ISSUED", "REVOKED", "EXPIRED"] } });
    await new Promise((r) => setTimeout(r, 200));
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
    const first = collect(admin);
    await new Promise((r) => setTimeout(r, 200));
    await applicationWithKeys(admin, "resumed");
    await until(() => first.events.length >= 2);
    const cursor = first.events[0]!.id;
    await first.client.dispose();
    const missed = await t.app.deps.database.raw<{ id: string }>(
      "select id::text from token_events where id > $1 order by id",
      [cursor],
    );
    const resumed = collect(admin, { after: cursor });
    await until(() => resumed.events.length >= missed.length);
    expect(resumed.events.map((e) => e.id)).toEqual(missed.map((r) => r.id));
    await loginAdmin(t);
    await until(() => resumed.events.length === missed.length + 1);
    expect(resumed.events.at(-1)).toMatchObject({ type: "ISSUED", reason: "LOGIN" });
    expect(new Set(resumed.events.map((e) => e.id)).size).toBe(resumed.events.length);
  });

  it("shows a subscriber only its own applications' and its own events", async () => {
    const owner = await createSubscriber(t, admin, "events-owner");
    const other = await createSubscriber(t, admin, "events-other");
    const mine = collect(owner.token);
    const theirs = collect(other.token);
    await new Promise((r) => setTimeout(r, 200));
    const { app } = await applicationWithKeys(owner.token, "owned-events");
    await until(() => mine.events.length >= 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(theirs.events).toEqual([]);
    expect(mine.events.every((e) => e.token === null || (e as any).applicationId === app.id)).toBe(true);
  });

  it("refuses an unauthenticated connection", async () => {
    const stream = collect("tmat_not-a-token");
    await until(() => stream.errors.length > 0);
    expect(stream.errors[0]).toMatchObject({ code: 4403 });
  });
});
