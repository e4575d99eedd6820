import { type Client, createClient } from "graphql-ws";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startTestApp, type TestApp } from "../support/app.js";
import { loginAdmin } from "../support/graphql.js";
import { runOnce, wsClient } from "../support/ws.js";

let t: TestApp;
let token: string;
const clients: Client[] = [];
const open = (tk?: string) => {
  const c = wsClient(t, tk);
  clients.push(c);
  return c;
};

beforeAll(async () => {
  t = await startTestApp({
    env: { WS_MAX_PAYLOAD: "2048", GRAPHQL_MAX_DEPTH: "5", WS_MAX_OPERATIONS: "3" },
  });
  token = await loginAdmin(t);
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
});
afterAll(() => t.stop());

describe("GraphQL over WebSocket (graphql-transport-ws)", () => {
  it("authenticates from connectionParams and runs operations", async () => {
    const result = await runOnce(open(token), "{ me { __typename ... on User { username roles } } }");
    expect(result).toEqual({ data: { me: { __typename: "User", username: "admin", roles: ["ADMIN"] } } });
  });

  it("refuses a connection without credentials (close 4403): log in over HTTP first", async () => {
    const closed = await runOnce(open(), "{ __typename }").then(
      () => null,
      (event: { code: number; reason: string }) => event,
    );
    expect(closed).toMatchObject({ code: 4403, reason: "Forbidden" });
  });

  it("refuses a connection that presents an invalid token (close 4403)", async () => {
    const closed = await runOnce(open("tmat_bogus"), "{ __typename }").then(
      () => null,
      (event: { code: number; reason: string }) => event,
    );
    expect(closed).toMatchObject({ code: 4403, reason: "Forbidden" });
  });

  it("applies the same validation limits as HTTP", async () => {
    const deep =
      "{ applications { ... on QueryApplicationsSuccess { data { subscriptions { api { scopes { name } } } } } } }";
    const error = await runOnce(open(token), deep).then(
      () => null,
      (errors: { message: string }[]) => errors,
    );
    expect(error).toEqual([
      expect.objectContaining({ message: "Syntax Error: Query depth limit of 5 exceeded, found 7." }),
    ]);
  });

  it("closes a socket that sends a message over the payload cap (1009)", async () => {
    const socket = new WebSocket(t.graphqlUrl.replace(/^http/, "ws"), "graphql-transport-ws");
    await new Promise((resolve) => socket.once("open", resolve));
    const closed = new Promise<number>((resolve) => socket.once("close", (code) => resolve(code)));
    socket.send(JSON.stringify({ type: "connection_init", payload: { padding: "x".repeat(4096) } }));
    expect(await closed).toBe(1009);
  });

  it("refuses an operation over WS_MAX_OPERATIONS on one connection, and keeps the connection", async () => {
    const client = open(token);
    const live = "subscription { tokenEvents { id } }";
    const failures: unknown[] = [];
    const stops = [1, 2, 3].map(() =>
      client.subscribe(
        { query: live },
        { next: () => {}, error: (e) => failures.push(e), complete: () => {} },
      ),
    );
    const refused = await runOnce(client, live).then(
      () => "answered",
      (errors) => errors,
    );
    expect(refused).toEqual([
      expect.objectContaining({
        message: "at most 3 operations may be in progress at once on one connection",
        extensions: { code: "TOO_MANY_OPERATIONS" },
      }),
    ]);
    // One ends (its Complete goes out before the next Subscribe): the next operation, on the same
    // connection, runs.
    stops[0]!();
    expect(await runOnce(client, "{ __typename }")).toEqual({ data: { __typename: "Query" } });
    expect(failures).toEqual([]);
    for (const stop of stops) stop();
  });

  it("refuses upgrades on other paths", async () => {
    const socket = new WebSocket(`${t.url.replace(/^http/, "ws")}/elsewhere`, "graphql-transport-ws");
    const status = await new Promise<number | undefined>((resolve) => {
      socket.once("unexpected-response", (_req, res) => resolve(res.statusCode));
      socket.once("error", () => resolve(undefined));
    });
    expect(status).toBe(404);
  });
});

describe("GraphQL over WebSocket when the database fails", () => {
  let broken: TestApp;
  beforeAll(async () => {
    broken = await startTestApp();
  });
  // Stopping closes the database a second time: that does nothing.
  afterAll(() => broken.stop());

  it("closes with 4500 and a fixed reason, outside production too, and logs the cause", async () => {
    expect(process.env.NODE_ENV).not.toBe("production");
    const session = await loginAdmin(broken);
    // One connection acknowledged while the database works: its next operation fails in onSubscribe.
    const connected = new Promise<void>((resolve) => {
      const client = createClient({
        url: broken.graphqlUrl.replace(/^http/, "ws"),
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${session}` },
        retryAttempts: 0,
        lazy: false,
        on: { connected: () => resolve() },
      });
      clients.push(client);
    });
    await connected;
    const established = clients.at(-1)!;
    await broken.app.deps.database.close();

    const closedBy = (client: Client) =>
      runOnce(client, "{ __typename }").then(
        () => null,
        // Read through the event's accessors (a CloseEvent's code and reason need not be own fields).
        (event: { code: number; reason: string }) => ({ code: event.code, reason: event.reason }),
      );
    const fixed = { code: 4500, reason: "Internal server error" };
    expect(await closedBy(established)).toEqual(fixed);
    // A new connection fails in onConnect (its token is looked up).
    const fresh = wsClient(broken, session);
    clients.push(fresh);
    expect(await closedBy(fresh)).toEqual(fixed);

    const errors = broken.logs
      .map((line) => JSON.parse(line) as { level: number; msg: string; err?: { message: string } })
      .filter((line) => line.level === 50);
    // Both hooks failed, and the cause is in the log: from onConnect in the hook's own line; from
    // onSubscribe (Yoga's context factory) in Yoga's "unexpected error" line, the hook's masked.
    expect(errors.filter((line) => line.msg === "graphql-ws hook failed")).toHaveLength(2);
    // (The app's background jobs, finding the database closed, may log their own failures too.)
    const withCause = errors
      .filter((line) => /closed|ended/i.test(line.err?.message ?? ""))
      .map((l) => l.msg);
    expect(withCause).toContain("graphql-ws hook failed");
    expect(withCause).toContain("unexpected error");
  });
});

describe("introspection over WebSocket in production", () => {
  let prod: TestApp;
  beforeAll(async () => {
    prod = await startTestApp({ env: { NODE_ENV: "production" } });
  });
  afterAll(() => prod.stop());

  it("is refused, as over HTTP", async () => {
    const client = wsClient(prod, await loginAdmin(prod));
    clients.push(client);
    const error = await runOnce(client, "{ __schema { queryType { name } } }").then(
      () => null,
      (errors: { message: string }[]) => errors,
    );
    expect(error?.[0]?.message).toBe(
      'GraphQL introspection has been disabled, but the requested query contained the field "__schema".',
    );
  });
});
