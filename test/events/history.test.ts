import { gql } from "graphql-request";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import {
  disposeCollectors,
  EVENT_FIELDS,
  type EventView,
  latestEventId,
  storedEvents,
  subscribeEvents,
  until,
} from "../support/events.js";
import { loginAs } from "../support/graphql.js";
import { NO_TOKEN } from "../support/keys.js";
import {
  clientCredentials,
  createWorld,
  newClient,
  newUser,
  type Owner,
  passwordGrant,
  revoke,
  type TestClient,
  type World,
} from "../support/oauth.js";

const HISTORY = gql`
  query History($first: Int, $after: String, $filter: TokenEventFilter) {
    tokenEvents(first: $first, after: $after, filter: $filter) {
      __typename
      ... on TokenEventConnection { edges { cursor node { ${EVENT_FIELDS} } } pageInfo { hasNextPage endCursor } }
      ... on ValidationError { field }
      ... on Error { code message }
    }
  }
`;

interface Page {
  __typename: string;
  edges?: { cursor: string; node: EventView }[];
  pageInfo?: { hasNextPage: boolean; endCursor: string | null };
  field?: string;
  code?: string;
  message?: string;
}

let t: TestApp;
let world: World;

beforeAll(async () => {
  t = await startTestApp({ issuerIsUrl: true });
  world = await createWorld(t);
});
afterEach(disposeCollectors);
afterAll(() => t.stop());

async function history(token: string | undefined, variables: Record<string, unknown> = {}): Promise<Page> {
  const { tokenEvents } = await t.client(token).request<{ tokenEvents: Page }>(HISTORY, variables);
  return tokenEvents;
}

const nodesOf = (page: Page) => page.edges!.map((edge) => edge.node);

/** A fresh application of `owner` with keys (KEYS_GENERATED, ISSUED), an issued token and its revocation. */
async function applicationWithEvents(owner: Owner = world.owner): Promise<TestClient> {
  const client = await newClient(world, { owner });
  const { access_token } = await clientCredentials(world, client);
  await revoke(world, client, access_token);
  return client;
}

describe("tokenEvents history", () => {
  it("lists events newest first, exactly as the live stream delivered them", async () => {
    const cursor = await latestEventId(t);
    const live = await subscribeEvents(t, world.adminToken);
    const client = await applicationWithEvents();
    const stored = await storedEvents(t, "application_id = $1", [client.applicationId]);
    expect(stored.map((e) => e.type)).toEqual(["KEYS_GENERATED", "ISSUED", "ISSUED", "REVOKED"]);
    await until(() => live.events.length >= stored.length, "the live events");
    expect(live.events).toEqual(await storedEvents(t, `id > ${cursor}`));

    const page = await history(world.adminToken, { filter: { applicationId: client.applicationId } });
    expect(page).toEqual({
      __typename: "TokenEventConnection",
      edges: [...stored].reverse().map((node) => ({ cursor: node.id, node })),
      pageInfo: { hasNextPage: false, endCursor: stored[0]!.id },
    });
    expect(nodesOf(page)).toEqual(
      live.events.filter((e) => e.applicationId === client.applicationId).reverse(),
    );
  });

  it("pages with first and after, without gap or overlap", async () => {
    const client = await applicationWithEvents();
    await clientCredentials(world, client);
    const newestFirst = (await storedEvents(t, "application_id = $1", [client.applicationId])).reverse();
    expect(newestFirst.length).toBe(5);
    const filter = { applicationId: client.applicationId };
    const ids = (page: Page) => nodesOf(page).map((node) => node.id);

    const first = await history(world.adminToken, { filter, first: 2 });
    expect(ids(first)).toEqual(newestFirst.slice(0, 2).map((e) => e.id));
    expect(first.pageInfo).toEqual({ hasNextPage: true, endCursor: newestFirst[1]!.id });
    const second = await history(world.adminToken, { filter, first: 2, after: first.pageInfo!.endCursor });
    expect(ids(second)).toEqual(newestFirst.slice(2, 4).map((e) => e.id));
    expect(second.pageInfo).toEqual({ hasNextPage: true, endCursor: newestFirst[3]!.id });
    const last = await history(world.adminToken, { filter, first: 2, after: second.pageInfo!.endCursor });
    expect(ids(last)).toEqual([newestFirst[4]!.id]);
    expect(last.pageInfo).toEqual({ hasNextPage: false, endCursor: newestFirst[4]!.id });

    // Exactly as many as asked: no next page. One fewer: there is one.
    expect((await history(world.adminToken, { filter, first: 5 })).pageInfo!.hasNextPage).toBe(false);
    expect((await history(world.adminToken, { filter, first: 4 })).pageInfo!.hasNextPage).toBe(true);
    const past = await history(world.adminToken, { filter, after: newestFirst[4]!.id });
    expect(past).toEqual({
      __typename: "TokenEventConnection",
      edges: [],
      pageInfo: { hasNextPage: false, endCursor: null },
    });
  });

  it("filters by type and user", async () => {
    const user = await newUser(t, world.adminToken);
    const client = await applicationWithEvents(user);
    await passwordGrant(world, client, {}, user);
    await loginAs(t, user.username, user.password);
    const byUser = await history(world.adminToken, { filter: { userId: user.id } });
    expect(nodesOf(byUser)).toEqual((await storedEvents(t, "user_id = $1", [user.id])).reverse());
    expect(nodesOf(byUser).map((e) => [e.type, e.reason])).toEqual([
      ["ISSUED", "LOGIN"],
      ["ISSUED", "CLIENT_REQUEST"],
      ["ISSUED", "LOGIN"],
    ]);
    const revoked = await history(world.adminToken, {
      filter: { types: ["REVOKED", "KEYS_GENERATED"], applicationId: client.applicationId },
    });
    expect(nodesOf(revoked).map((e) => e.type)).toEqual(["REVOKED", "KEYS_GENERATED"]);
  });

  it("shows a subscriber only its own and its applications' events", async () => {
    const users = [await newUser(t, world.adminToken), await newUser(t, world.adminToken)];
    const clients = [await applicationWithEvents(users[0]), await applicationWithEvents(users[1])];
    for (const [i, user] of users.entries()) {
      const own = await storedEvents(
        t,
        "user_id = $1 or application_id in (select id from applications where owner_id = $1)",
        [user.id],
      );
      expect(own.length).toBe(5);
      expect(nodesOf(await history(user.token, { first: 500 }))).toEqual(own.reverse());
      const other = clients[1 - i]!.applicationId;
      expect(nodesOf(await history(user.token, { filter: { applicationId: other } }))).toEqual([]);
      expect(nodesOf(await history(world.adminToken, { filter: { applicationId: other } })).length).toBe(4);
    }
  });

  it("reports a bad cursor, page size or filter as a ValidationError", async () => {
    const invalid = (field: string, message: string) => ({
      __typename: "ValidationError",
      code: "VALIDATION_FAILED",
      field,
      message,
    });
    expect(await history(world.adminToken, { after: "not-a-cursor" })).toEqual(
      invalid("after", "after: must be an event id"),
    );
    expect(await history(world.adminToken, { after: "-1" })).toEqual(
      invalid("after", "after: must be an event id"),
    );
    expect(await history(world.adminToken, { first: 0 })).toEqual(invalid("first", "first must be 1 to 500"));
    expect(await history(world.adminToken, { first: 501 })).toEqual(
      invalid("first", "first must be 1 to 500"),
    );
    expect(await history(world.adminToken, { filter: { userId: "nobody" } })).toEqual(
      invalid("userId", "userId: Invalid UUID"),
    );
  });

  it("requires authentication", async () => {
    expect(await history(undefined)).toEqual(NO_TOKEN);
  });
});
