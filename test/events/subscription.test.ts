import { gql } from "graphql-request";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import {
  type Collector,
  disposeCollectors,
  hubSubscribers,
  latestEventId,
  sleep,
  storedEvents,
  subscribeEvents,
  until,
} from "../support/events.js";
import { LOGIN, loginAs } from "../support/graphql.js";
import { revokeTokenById } from "../support/keys.js";
import {
  accessTokenRow,
  clientCredentials,
  createWorld,
  idOf,
  newClient,
  newUser,
  type Owner,
  passwordGrant,
  refresh,
  revoke,
  type World,
} from "../support/oauth.js";

const REFRESH_USER_TOKEN = gql`
  mutation Refresh($input: RefreshUserTokenInput!) {
    refreshUserToken(input: $input) {
      __typename
      ... on LoginPayload { accessToken refreshToken }
      ... on Error { code message }
    }
  }
`;

const UPDATE_USER = gql`
  mutation UpdateUser($input: UpdateUserInput!) {
    updateUser(input: $input) {
      __typename
      ... on UpdateUserPayload { user { id } }
      ... on Error { code message }
    }
  }
`;

/** How graphql-ws reports a stream the server ended because the viewer's session ended. */
const SESSION_ENDED = [
  { message: "the session's access token was revoked or expired", extensions: { code: "UNAUTHENTICATED" } },
];

let t: TestApp;
let world: World;

beforeAll(async () => {
  t = await startTestApp({ issuerIsUrl: true, env: { SWEEPER_INTERVAL_MS: "100" } });
  world = await createWorld(t);
});
afterEach(disposeCollectors);
afterAll(() => t.stop());

/** Waits until `collector` holds `count` events, then a little longer to catch any extra one. */
async function received(collector: Collector, count: number): Promise<void> {
  await until(() => collector.events.length >= count, `${count} events`);
  await sleep(100);
}

/** Logs in through the GraphQL Login API, returning both tokens. */
async function login(owner: Owner): Promise<{ accessToken: string; refreshToken: string }> {
  const { login } = await t
    .client()
    .request<{ login: { accessToken: string; refreshToken: string } }>(LOGIN, {
      input: { username: owner.username, password: owner.password },
    });
  return login;
}

const expiryOf = async (value: string) =>
  new Date((await accessTokenRow(t, value)).expires_at!).toISOString();

describe("tokenEvents payloads", () => {
  it("delivers ISSUED for a login, with the user token's snapshot", async () => {
    const owner = await newUser(t, world.adminToken);
    const stream = await subscribeEvents(t, owner.token);
    const value = await loginAs(t, owner.username, owner.password);
    await received(stream, 1);
    const [stored] = await storedEvents(t, "token_id = $1", [idOf(value)]);
    expect(stream.events).toEqual([stored]);
    expect(stored).toEqual({
      id: expect.stringMatching(/^[0-9]+$/),
      type: "ISSUED",
      reason: "LOGIN",
      occurredAt: expect.any(String),
      applicationId: null,
      keyType: null,
      userId: owner.id,
      token: {
        id: idOf(value),
        kind: "USER",
        keyType: null,
        applicationId: null,
        userId: owner.id,
        scopes: [],
        expiresAt: await expiryOf(value),
      },
    });
  });

  it("delivers ISSUED for client_credentials and REVOKED for POST /revoke", async () => {
    const client = await newClient(world);
    const stream = await subscribeEvents(t, world.owner.token, {
      filter: { applicationId: client.applicationId },
    });
    const { access_token: value } = await clientCredentials(world, client);
    await revoke(world, client, value);
    await received(stream, 2);
    const snapshot = {
      id: idOf(value),
      kind: "APPLICATION",
      keyType: "PRODUCTION",
      applicationId: client.applicationId,
      userId: null,
      scopes: ["read", "write"],
      expiresAt: await expiryOf(value),
    };
    expect(stream.events).toEqual(await storedEvents(t, "token_id = $1", [idOf(value)]));
    expect(stream.events).toMatchObject([
      {
        type: "ISSUED",
        reason: "CLIENT_REQUEST",
        applicationId: client.applicationId,
        keyType: "PRODUCTION",
        userId: null,
        token: snapshot,
      },
      {
        type: "REVOKED",
        reason: "CLIENT_REQUEST",
        applicationId: client.applicationId,
        keyType: "PRODUCTION",
        userId: null,
        token: snapshot,
      },
    ]);
  });

  it("matches a filter's ids whatever their case, as the history query does", async () => {
    const client = await newClient(world);
    const stream = await subscribeEvents(t, world.owner.token, {
      filter: { applicationId: client.applicationId.toUpperCase() },
    });
    const { access_token: value } = await clientCredentials(world, client);
    await received(stream, 1);
    expect(stream.events).toMatchObject([{ type: "ISSUED", applicationId: client.applicationId }]);
    expect(stream.events).toEqual(await storedEvents(t, "token_id = $1", [idOf(value)]));
  });

  it("delivers REVOKED with reason OWNER or ADMIN for revokeTokenById", async () => {
    const client = await newClient(world);
    const stream = await subscribeEvents(t, world.owner.token, {
      filter: { applicationId: client.applicationId, types: ["REVOKED"] },
    });
    const mine = await clientCredentials(world, client);
    const theirs = await clientCredentials(world, client);
    expect(await revokeTokenById(t, world.owner.token, idOf(mine.access_token))).toMatchObject({
      __typename: "RevokeTokenByIdPayload",
    });
    expect(await revokeTokenById(t, world.adminToken, idOf(theirs.access_token))).toMatchObject({
      __typename: "RevokeTokenByIdPayload",
    });
    await received(stream, 2);
    expect(stream.events.map((e) => [e.type, e.reason, e.token?.id])).toEqual([
      ["REVOKED", "OWNER", idOf(mine.access_token)],
      ["REVOKED", "ADMIN", idOf(theirs.access_token)],
    ]);
  });

  it("delivers REFRESHED for refreshUserToken, naming the new access token", async () => {
    const owner = await newUser(t, world.adminToken);
    const stream = await subscribeEvents(t, owner.token, { filter: { userId: owner.id } });
    const first = await login(owner);
    const { refreshUserToken } = await t
      .client()
      .request<{ refreshUserToken: { __typename: string; accessToken: string } }>(REFRESH_USER_TOKEN, {
        input: { refreshToken: first.refreshToken },
      });
    expect(refreshUserToken.__typename).toBe("LoginPayload");
    await received(stream, 2);
    expect(stream.events).toEqual(
      await storedEvents(t, "token_id = any($1::uuid[])", [
        [idOf(first.accessToken), idOf(refreshUserToken.accessToken)],
      ]),
    );
    expect(stream.events[1]).toMatchObject({
      type: "REFRESHED",
      reason: "ROTATED",
      userId: owner.id,
      applicationId: null,
      token: {
        id: idOf(refreshUserToken.accessToken),
        kind: "USER",
        userId: owner.id,
        scopes: [],
        expiresAt: await expiryOf(refreshUserToken.accessToken),
      },
    });
    expect(stream.events[0]).toMatchObject({
      type: "ISSUED",
      reason: "LOGIN",
      token: { id: idOf(first.accessToken) },
    });
  });

  it("delivers REFRESHED for POST /token grant_type=refresh_token, with the application and scopes", async () => {
    const client = await newClient(world);
    const stream = await subscribeEvents(t, world.owner.token, {
      filter: { applicationId: client.applicationId },
    });
    const first = await passwordGrant(world, client);
    const second = await refresh(world, client, first.refresh_token!);
    await received(stream, 2);
    const snapshot = (value: string) => ({
      id: idOf(value),
      kind: "USER",
      keyType: "PRODUCTION",
      applicationId: client.applicationId,
      userId: world.owner.id,
      scopes: ["read", "write"],
    });
    expect(stream.events).toMatchObject([
      { type: "ISSUED", reason: "CLIENT_REQUEST", token: snapshot(first.access_token) },
      { type: "REFRESHED", reason: "ROTATED", token: snapshot(second.access_token) },
    ]);
    expect(stream.events).toEqual(
      await storedEvents(t, "token_id = any($1::uuid[])", [
        [idOf(first.access_token), idOf(second.access_token)],
      ]),
    );
  });
});

describe("tokenEvents filter", () => {
  it("delivers only the types, application and user asked for", async () => {
    const a = await newClient(world);
    const b = await newClient(world);
    const other = await newUser(t, world.adminToken);
    const cursor = await latestEventId(t);
    const admin = world.adminToken;
    const all = await subscribeEvents(t, admin);
    const revoked = await subscribeEvents(t, admin, { filter: { types: ["REVOKED"] } });
    const ofA = await subscribeEvents(t, admin, { filter: { applicationId: a.applicationId } });
    const ofOther = await subscribeEvents(t, admin, { filter: { userId: other.id } });
    const issuedOfA = await subscribeEvents(t, admin, {
      filter: { types: ["ISSUED"], applicationId: a.applicationId },
    });

    const appToken = await clientCredentials(world, a);
    await clientCredentials(world, b);
    await passwordGrant(world, a, {}, other);
    await loginAs(t, other.username, other.password);
    await revoke(world, a, appToken.access_token);
    const expected = async (where: string, params: unknown[] = []) =>
      storedEvents(t, `id > ${cursor} and ${where}`, params);
    const everything = await expected("true");
    expect(everything.map((e) => e.type)).toEqual(["ISSUED", "ISSUED", "ISSUED", "ISSUED", "REVOKED"]);
    await received(all, everything.length);
    expect(all.events).toEqual(everything);

    const cases: [Collector, string, unknown[]][] = [
      [revoked, "type = 'REVOKED'", []],
      [ofA, "application_id = $1", [a.applicationId]],
      [ofOther, "user_id = $1", [other.id]],
      [issuedOfA, "type = 'ISSUED' and application_id = $1", [a.applicationId]],
    ];
    for (const [collector, where, params] of cases) {
      const wanted = await expected(where, params);
      await until(() => collector.events.length >= wanted.length, where);
      expect(collector.events, where).toEqual(wanted);
    }
    expect([revoked, ofA, ofOther, issuedOfA].map((c) => c.events.length)).toEqual([1, 3, 2, 2]);
  });

  it("ends the stream with a VALIDATION_FAILED error for a malformed filter or cursor", async () => {
    const cases: [Record<string, unknown>, string, string][] = [
      [{ filter: { applicationId: "not-a-uuid" } }, "applicationId", "applicationId: Invalid UUID"],
      [{ filter: { userId: "nobody" } }, "userId", "userId: Invalid UUID"],
      [{ after: "yesterday" }, "after", "after: must be an event id"],
    ];
    for (const [variables, field, message] of cases) {
      const stream = await subscribeEvents(t, world.adminToken, variables);
      await until(() => stream.errors.length > 0, "the stream to end");
      expect(stream.errors, field).toEqual([[{ message, extensions: { code: "VALIDATION_FAILED", field } }]]);
      expect(stream.events).toEqual([]);
    }
    expect(hubSubscribers(t)).toBe(0);
  });
});

describe("tokenEvents visibility", () => {
  it("never shows a subscriber another subscriber's events", async () => {
    const users = [await newUser(t, world.adminToken), await newUser(t, world.adminToken)];
    const clients = [
      await newClient(world, { owner: users[0] }),
      await newClient(world, { owner: users[1] }),
    ];
    const cursor = await latestEventId(t);
    const admin = await subscribeEvents(t, world.adminToken);
    const streams = [await subscribeEvents(t, users[0]!.token), await subscribeEvents(t, users[1]!.token)];
    for (const [i, client] of clients.entries()) {
      const issued = await clientCredentials(world, client);
      await passwordGrant(world, client, {}, users[i]);
      await revoke(world, client, issued.access_token);
    }
    const everything = await storedEvents(t, `id > ${cursor}`);
    await received(admin, everything.length);
    for (const [i, stream] of streams.entries()) {
      const own = await storedEvents(t, `id > ${cursor} and (user_id = $1 or application_id = $2)`, [
        users[i]!.id,
        clients[i]!.applicationId,
      ]);
      expect(own.map((e) => e.type)).toEqual(["ISSUED", "ISSUED", "REVOKED"]);
      await until(() => stream.events.length >= own.length);
      expect(stream.events).toEqual(own);
    }
    expect(admin.events).toEqual(everything);
    expect(everything.length).toBe(6);
  });
});

describe("tokenEvents authentication", () => {
  it("refuses a connection without a token, with an unknown one, or with a revoked one (4403)", async () => {
    const owner = await newUser(t, world.adminToken);
    await revokeTokenById(t, world.adminToken, idOf(owner.token));
    const before = hubSubscribers(t);
    for (const token of [undefined, "tmat_not-a-token", owner.token]) {
      const stream = await subscribeEvents(t, token);
      await until(() => stream.closes.length > 0, "the socket to close");
      expect(stream.closes, token).toEqual([{ code: 4403, reason: "Forbidden" }]);
      expect(stream.errors).toMatchObject([{ code: 4403, reason: "Forbidden" }]);
      expect(stream.events).toEqual([]);
    }
    expect(hubSubscribers(t)).toBe(before);
  });
});

describe("tokenEvents per-event authorization", () => {
  it("ends the stream of a subscriber disabled mid-stream", async () => {
    const owner = await newUser(t, world.adminToken);
    const client = await newClient(world, { owner });
    const stream = await subscribeEvents(t, owner.token);
    const live = await clientCredentials(world, client);
    await received(stream, 1);
    expect(stream.events.map((e) => e.token?.id)).toEqual([idOf(live.access_token)]);

    const { updateUser } = await t
      .client(world.adminToken)
      .request<{ updateUser: { __typename: string } }>(UPDATE_USER, {
        input: { id: owner.id, disabled: true },
      });
    expect(updateUser.__typename).toBe("UpdateUserPayload");
    await until(() => stream.errors.length > 0, "the stream to end");
    expect(stream.errors).toEqual([SESSION_ENDED]);
    await until(() => hubSubscribers(t) === 0, "the server to drop the subscription");
    // The disabling revoked both tokens in one transaction: the stream ended at the session's own
    // revocation, delivering only what came before it.
    const revocations = await storedEvents(t, "type = 'REVOKED' and token_id = any($1::uuid[])", [
      [idOf(owner.token), idOf(live.access_token)],
    ]);
    expect(revocations.map((e) => e.reason)).toEqual(["USER_DISABLED", "USER_DISABLED"]);
    const own = revocations.find((e) => e.token!.id === idOf(owner.token))!;
    const [issued] = await storedEvents(t, "type = 'ISSUED' and token_id = $1", [idOf(live.access_token)]);
    expect(stream.events).toEqual([issued, ...revocations.filter((e) => Number(e.id) < Number(own.id))]);
  });

  it("ends the stream of a subscriber whose console token is revoked", async () => {
    const owner = await newUser(t, world.adminToken);
    const client = await newClient(world, { owner });
    const stream = await subscribeEvents(t, owner.token);
    expect(hubSubscribers(t)).toBe(1);
    await revokeTokenById(t, world.adminToken, idOf(owner.token));
    await until(() => stream.errors.length > 0, "the stream to end");
    expect(stream.errors).toEqual([SESSION_ENDED]);
    expect(stream.events).toEqual([]);
    await until(() => hubSubscribers(t) === 0, "the server to drop the subscription");
    // Its application's events no longer reach it.
    await clientCredentials(world, client);
    await sleep(200);
    expect(stream.events).toEqual([]);
  });
});
