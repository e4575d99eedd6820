import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startTestApp, type TestApp } from "../support/app.js";
import { loginAdmin, postGraphQL } from "../support/graphql.js";
import { waitFor } from "../support/keys.js";
import { runOnce, wsClient } from "../support/ws.js";

let t: TestApp;
let token: string;
beforeAll(async () => {
  t = await startTestApp({
    env: { GRAPHQL_MAX_DEPTH: "6", GRAPHQL_MAX_ALIASES: "3", HTTP_BODY_LIMIT: "4096" },
  });
  token = await loginAdmin(t);
});
afterAll(() => t.stop());

const auth = () => ({ authorization: `Bearer ${token}` });

describe("GraphQL hardening over HTTP", () => {
  it("rejects a query deeper than the depth limit", async () => {
    const deep =
      "{ applications { ... on QueryApplicationsSuccess { data { owner { id } subscriptions { api { scopes { name } } } } } } }";
    const { status, body } = await postGraphQL(t, { query: deep }, auth());
    expect(status).toBe(400);
    expect(body.errors[0].message).toMatch(/Syntax Error: Query depth limit of 6 exceeded/);
    expect(body.data).toBeUndefined();
  });

  it("rejects more aliases than allowed", async () => {
    const query = "{ a: me { __typename } b: me { __typename } c: me { __typename } d: me { __typename } }";
    const { status, body } = await postGraphQL(t, { query }, auth());
    expect(status).toBe(400);
    expect(body.errors[0].message).toMatch(/Aliases limit of 3 exceeded/);
  });

  it("answers a body over the size cap with 413", async () => {
    const { status, body } = await postGraphQL(
      t,
      { query: `{ me { __typename } }${" ".repeat(5000)}` },
      auth(),
    );
    expect(status).toBe(413);
    expect(body.errors[0].extensions.code).toBe("FST_ERR_CTP_BODY_TOO_LARGE");
  });

  it("answers malformed JSON with 400, not 500", async () => {
    const { status, body } = await postGraphQL(t, '{"query": "{ me', auth());
    expect(status).toBe(400);
    expect(body.errors[0].extensions.code).toBe("FST_ERR_CTP_INVALID_JSON_BODY");
  });

  it("answers a body without a query with 400", async () => {
    const { status, body } = await postGraphQL(t, { nope: 1 }, auth());
    expect(status).toBe(400);
    expect(body.errors[0].message).toBe('Unexpected parameter "nope" in the request body.');
  });

  it("answers a variable of the wrong type with 400 and no data", async () => {
    const query = "mutation($input: LoginInput!) { login(input: $input) { __typename } }";
    const { status, body } = await postGraphQL(t, {
      query,
      variables: { input: { username: 5, password: true } },
    });
    expect(status).toBe(400);
    expect(body.errors[0].message).toMatch(/String cannot represent a non string value/);
  });

  it("requires a CSRF header on requests a browser sends without preflight", async () => {
    const get = await fetch(`${t.graphqlUrl}?query=${encodeURIComponent("{ __typename }")}`);
    expect(get.status).toBe(403);
    expect(await get.json()).toEqual({ errors: [{ message: "Required CSRF header(s) not present" }] });
    const withHeader = await fetch(`${t.graphqlUrl}?query=${encodeURIComponent("{ __typename }")}`, {
      headers: { "x-graphql-yoga-csrf": "1" },
    });
    expect(withHeader.status).toBe(200);
    expect(await withHeader.json()).toEqual({ data: { __typename: "Query" } });
  });

  it("allows introspection outside production by default", async () => {
    const { status, body } = await postGraphQL(t, { query: "{ __schema { queryType { name } } }" });
    expect(status).toBe(200);
    expect(body.data.__schema.queryType.name).toBe("Query");
  });
});

describe("input the database cannot store, and requests the parser cannot read", () => {
  const UNSTORABLE = {
    message: "a string argument holds a NUL character or is not valid Unicode text",
    extensions: { code: "BAD_USER_INPUT" },
  };
  const LOGIN = "mutation($input: LoginInput!) { login(input: $input) { __typename } }";

  it.each([
    [
      "a NUL in a variable",
      { query: LOGIN, variables: { input: { username: "a\u0000b", password: "pw-123456" } } },
    ],
    [
      "a lone surrogate in a variable",
      { query: LOGIN, variables: { input: { username: "a\ud800", password: "pw-123456" } } },
    ],
    [
      "a NUL in a literal",
      { query: 'mutation { login(input: {username: "a\\u0000b", password: "pw-123456"}) { __typename } }' },
    ],
    ["a NUL in a filter", { query: 'query { tokens(filter: {scope: "a\\u0000b"}) { __typename } }' }],
  ])("refuses %s with BAD_USER_INPUT, before any resolver, logging no error", async (_name, request) => {
    const before = t.logs.length;
    const { body } = await postGraphQL(t, request, auth());
    expect(body).toEqual({ errors: [UNSTORABLE] });
    expect(t.logs.slice(before).join("")).not.toContain('"level":50');
  });

  it("keeps a surrogate pair (one code point) as the text it is", async () => {
    const { body } = await postGraphQL(t, {
      query: LOGIN,
      variables: { input: { username: "nobody-\ud83d\ude00", password: "pw-123456" } },
    });
    expect(body.data.login.__typename).toBe("InvalidCredentialsError");
  });

  it.each([
    ["a mutation", LOGIN, { input: { username: "a\u0000b", password: "pw-123456" } }],
    [
      "a subscription",
      "subscription($t: [TokenEventType!]) { tokenEvents(filter: {types: $t}) { id } }",
      { t: ["ISSUED"], "x\u0000": 1 },
    ],
  ])("refuses a NUL over WebSocket too, in %s", async (_name, query, variables) => {
    const client = wsClient(t, token);
    try {
      const refused = await runOnce(client, query, variables).then(
        () => "answered",
        (errors) => errors,
      );
      expect(refused).toEqual([expect.objectContaining(UNSTORABLE)]);
    } finally {
      await client.dispose();
    }
  });

  it("refuses variables nested past 32 levels, however deep, over HTTP and WebSocket", async () => {
    // As text: JSON.stringify itself overflows the stack at the depths tried here.
    const nested = (depth: number) => `${"[".repeat(depth)}"x"${"]".repeat(depth)}`;
    const TOO_DEEP = {
      message: "variables may be nested at most 32 levels deep",
      extensions: { code: "BAD_USER_INPUT" },
    };
    const before = t.logs.length;
    // Depths up to what this app's 4 KB body limit lets through.
    for (const depth of [40, 2_000]) {
      const answer = await postGraphQL(
        t,
        `{"query":"{ __typename }","variables":{"a":${nested(depth)}}}`,
        auth(),
      );
      expect({ depth, status: answer.status, body: answer.body }).toEqual({
        depth,
        status: 200,
        body: { errors: [TOO_DEEP] },
      });
    }
    // Within the bound, an unused variable changes nothing.
    const shallow = await postGraphQL(
      t,
      `{"query":"{ __typename }","variables":{"a":${nested(20)}}}`,
      auth(),
    );
    expect(shallow.body).toEqual({ data: { __typename: "Query" } });
    // Over WebSocket (64 KB messages): 30,000 levels, a query and a subscription.
    const socket = new WebSocket(t.graphqlUrl.replace(/^http/, "ws"), "graphql-transport-ws");
    const messages: { id?: string; type: string; payload?: unknown }[] = [];
    socket.on("message", (data) => messages.push(JSON.parse(String(data))));
    await new Promise((resolve) => socket.once("open", resolve));
    socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${token}` } }));
    const queries = ["{ __typename }", "subscription { tokenEvents { id } }"];
    try {
      await waitFor(async () => (messages.some((m) => m.type === "connection_ack") ? true : undefined));
      for (const [i, query] of queries.entries()) {
        const variables = `{"a":${nested(30_000)}}`;
        socket.send(
          `{"id":"${i}","type":"subscribe","payload":{"query":"${query}","variables":${variables}}}`,
        );
      }
      await waitFor(async () => (messages.filter((m) => m.type === "error").length === 2 ? true : undefined));
      expect(messages.filter((m) => m.type !== "connection_ack")).toEqual([
        { id: "0", type: "error", payload: [TOO_DEEP] },
        { id: "1", type: "error", payload: [TOO_DEEP] },
      ]);
    } finally {
      socket.close();
    }
    expect(t.logs.slice(before).join("")).not.toContain('"level":50');
  });

  it.each([
    ["variables", "%7Bbad"],
    ["extensions", "%7Bbad"],
    ["variables", "%5B1%5D"],
    ["variables", "1"],
  ])("answers GET with %s=%s with 400 BAD_REQUEST, logging no error", async (name, value) => {
    const before = t.logs.length;
    const response = await fetch(`${t.graphqlUrl}?query=%7B__typename%7D&${name}=${value}`, {
      headers: { "x-graphql-yoga-csrf": "1", accept: "application/graphql-response+json" },
    });
    expect(response.status).toBe(400);
    const body = await response.json();
    expect(body.errors).toHaveLength(1);
    expect(body.errors[0].extensions).toEqual({ code: "BAD_REQUEST" });
    expect(body.errors[0].message).toMatch(new RegExp(name));
    expect(t.logs.slice(before).join("")).not.toContain('"level":50');
  });

  it.each(["[]", "null", "1", '"x"'])(
    "answers the JSON body %s with 400 and no parser internals",
    async (raw) => {
      const { status, body } = await postGraphQL(t, raw, auth());
      expect(status).toBe(400);
      expect(body.errors).toHaveLength(1);
      expect(JSON.stringify(body)).not.toContain("originalError");
      expect(body.errors[0].extensions.code).toMatch(/^(BAD_REQUEST|FST_ERR_CTP_\w+)$/);
    },
  );
});

/** POST /graphql as the admin, asking for the response in `accept`. */
const postAccepting = (accept: string, query: string) =>
  fetch(t.graphqlUrl, {
    method: "POST",
    headers: { "content-type": "application/json", accept, ...auth() },
    body: JSON.stringify({ query }),
    signal: AbortSignal.timeout(5_000),
  });

describe("Accept headers", () => {
  it.each(["application/xml", "text/html", "image/png, application/pdf;q=0.9"])(
    "answers Accept: %s with 406 and a GraphQL error body",
    async (accept) => {
      const response = await postAccepting(accept, "{ __typename }");
      expect(response.status).toBe(406);
      expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
      const body = await response.json();
      expect(body.errors).toHaveLength(1);
      expect(body.errors[0].extensions).toEqual({ code: "NOT_ACCEPTABLE" });
    },
  );

  it.each([
    "application/json",
    "*/*",
    "application/graphql-response+json;charset=utf-8",
    "text/html, */*;q=0.8",
  ])("answers Accept: %s", async (accept) => {
    const response = await postAccepting(accept, "{ __typename }");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ data: { __typename: "Query" } });
  });
});

describe("subscriptions over HTTP", () => {
  it.each(["text/event-stream", "application/json", "application/graphql-response+json"])(
    "refuses a subscription over HTTP (Accept: %s) with 400: subscriptions are served over WebSocket",
    async (accept) => {
      const response = await postAccepting(accept, "subscription { tokenEvents { id } }");
      expect(response.status).toBe(400);
      // Over Server-Sent Events the error comes as the stream's only event, then the stream ends.
      const text = await response.text();
      expect(text).toContain(
        '{"errors":[{"message":"subscriptions are served over WebSocket (graphql-transport-ws) at this path, not over HTTP","extensions":{"code":"BAD_REQUEST"}}]}',
      );
    },
  );
});

describe("introspection turned off", () => {
  let prod: TestApp;
  beforeAll(async () => {
    prod = await startTestApp({ env: { NODE_ENV: "production" } });
  });
  afterAll(() => prod.stop());

  it("refuses introspection over HTTP in production", async () => {
    const { status, body } = await postGraphQL(prod, { query: "{ __schema { queryType { name } } }" });
    expect(status).toBe(400);
    expect(body.errors[0].message).toMatch(/GraphQL introspection has been disabled/);
  });

  it("does not suggest field names in production", async () => {
    const { status, body } = await postGraphQL(prod, { query: "{ mee { __typename } }" });
    expect(status).toBe(400);
    expect(body.errors[0].message).toBe('Cannot query field "mee" on type "Query". [Suggestion hidden]');
  });
});
