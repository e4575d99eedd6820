import { gql } from "graphql-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, startTestApp, type TestApp } from "../support/app.js";
import { uniqueName } from "../support/fixtures.js";
import { createApiAs, createSubscriber, ERROR_FIELDS, loginAdmin, postGraphQL } from "../support/graphql.js";

const API_FIELDS =
  "id name context version description scopes { name description } resources { method pathPattern scopes }";

const CREATE_API = gql`
  mutation CreateApi($input: CreateApiInput!) {
    createApi(input: $input) {
      __typename
      ... on CreateApiPayload { api { ${API_FIELDS} } }
      ... on ValidationError { field }
      ... on AlreadyExistsError { resource field }
      ${ERROR_FIELDS}
    }
  }
`;

const APIS = gql`
  query Apis {
    apis {
      __typename
      ... on QueryApisSuccess { data { ${API_FIELDS} } }
      ${ERROR_FIELDS}
    }
  }
`;

interface Api {
  id: string;
  name: string;
  context: string;
  version: string;
  description: string | null;
  scopes: { name: string; description: string | null }[];
  resources: { method: string; pathPattern: string; scopes: string[] }[];
}
interface Outcome {
  __typename: string;
  code?: string;
  message?: string;
  field?: string;
  resource?: string;
  api?: Api;
  data?: Api[];
}

const NO_TOKEN = {
  __typename: "UnauthenticatedError",
  code: "UNAUTHENTICATED",
  message: "authentication required: send Authorization: Bearer <access token>",
};
const BAD_TOKEN = {
  __typename: "UnauthenticatedError",
  code: "UNAUTHENTICATED",
  message: "the access token is invalid, expired or revoked",
};

let t: TestApp;
let adminToken: string;
let subscriberToken: string;

beforeAll(async () => {
  // A statement-count test lives here: keep the sweeper's background statements out of it.
  t = await startTestApp({ env: { SWEEPER_INTERVAL_MS: "3600000" } });
  adminToken = await loginAdmin(t);
  subscriberToken = (await createSubscriber(t, adminToken, uniqueName("sub"))).token;
});
afterAll(() => t.stop());

async function createApi(token: string | undefined, input: Record<string, unknown>): Promise<Outcome> {
  return (await t.client(token).request<{ createApi: Outcome }>(CREATE_API, { input })).createApi;
}

async function listApis(token: string | undefined): Promise<Outcome> {
  return (await t.client(token).request<{ apis: Outcome }>(APIS)).apis;
}

/** APIs stored under a context (any version). */
async function storedApis(context: string) {
  return t.app.deps.database.raw<{ id: string; version: string }>(
    "select id, version from apis where context = $1 order by version",
    [context],
  );
}

const aContext = () => `/${uniqueName("ctx")}`;

describe("createApi", () => {
  it("publishes an API with its scopes and resources, and stores them", async () => {
    const context = aContext();
    const result = await createApi(adminToken, {
      name: "  Twitter  ",
      context,
      version: "1.0.0",
      description: "Tweets",
      scopes: [{ name: "tweets:read", description: "Read tweets" }, { name: "tweets:write" }],
      resources: [
        { method: "GET", pathPattern: "/search/{id}", scopes: ["tweets:read"] },
        { method: "POST", pathPattern: "/tweets", scopes: ["tweets:read", "tweets:write"] },
        { method: "GET", pathPattern: "/health" },
      ],
    });
    expect(result).toEqual({
      __typename: "CreateApiPayload",
      api: {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name: "Twitter",
        context,
        version: "1.0.0",
        description: "Tweets",
        scopes: [
          { name: "tweets:read", description: "Read tweets" },
          { name: "tweets:write", description: null },
        ],
        resources: expect.arrayContaining([
          { method: "GET", pathPattern: "/search/{id}", scopes: ["tweets:read"] },
          { method: "POST", pathPattern: "/tweets", scopes: ["tweets:read", "tweets:write"] },
          { method: "GET", pathPattern: "/health", scopes: [] },
        ]),
      },
    });
    expect(result.api?.resources).toHaveLength(3);

    const id = result.api!.id;
    const raw = t.app.deps.database.raw.bind(t.app.deps.database);
    const [admin] = await raw<{ id: string }>("select id from users where username = $1", [ADMIN.username]);
    expect(
      await raw("select name, context, version, description, created_by from apis where id = $1", [id]),
    ).toEqual([{ name: "Twitter", context, version: "1.0.0", description: "Tweets", created_by: admin!.id }]);
    expect(
      await raw("select name, description from api_scopes where api_id = $1 order by name", [id]),
    ).toEqual([
      { name: "tweets:read", description: "Read tweets" },
      { name: "tweets:write", description: null },
    ]);
    expect(
      await raw(
        "select method, path_pattern, scopes from api_resources where api_id = $1 order by path_pattern",
        [id],
      ),
    ).toEqual([
      { method: "GET", path_pattern: "/health", scopes: [] },
      { method: "GET", path_pattern: "/search/{id}", scopes: ["tweets:read"] },
      { method: "POST", path_pattern: "/tweets", scopes: ["tweets:read", "tweets:write"] },
    ]);
  });

  it("publishes an API with only a name, context and version", async () => {
    const context = aContext();
    const result = await createApi(adminToken, { name: "Bare", context, version: "v2" });
    expect(result.api).toMatchObject({
      name: "Bare",
      context,
      version: "v2",
      description: null,
      scopes: [],
      resources: [],
    });
    expect(await storedApis(context)).toEqual([{ id: result.api!.id, version: "v2" }]);
  });

  it("accepts a multi-segment context", async () => {
    const context = `/${uniqueName("org")}/payments`;
    const result = await createApi(adminToken, { name: "Payments", context, version: "1.0.0" });
    expect(result.api?.context).toBe(context);
  });

  it("publishes a second version under the same context", async () => {
    const context = aContext();
    const v1 = await createApi(adminToken, { name: "Versioned", context, version: "1.0.0" });
    const v2 = await createApi(adminToken, { name: "Versioned", context, version: "2.0.0" });
    expect(v2.__typename).toBe("CreateApiPayload");
    expect(await storedApis(context)).toEqual([
      { id: v1.api!.id, version: "1.0.0" },
      { id: v2.api!.id, version: "2.0.0" },
    ]);
  });

  it.each([
    ["under an existing API's prefix", "/a/v1/inner", "v2", "/a", "v1"],
    ["above an existing API's prefix", "/a", "b", "/a/b/inner", "v1"],
  ])(
    "refuses an API %s (a gateway could not tell the two apart), storing nothing",
    async (_name, newContext, newVersion, oldContext, oldVersion) => {
      const root = aContext();
      await createApi(adminToken, { name: "Outer", context: `${root}${oldContext}`, version: oldVersion });
      const context = `${root}${newContext}`;
      expect(await createApi(adminToken, { name: "Nested", context, version: newVersion })).toEqual({
        __typename: "ValidationError",
        code: "VALIDATION_FAILED",
        field: "context",
        message: `context: ${context}/${newVersion} and the API ${root}${oldContext}/${oldVersion} would overlap (one lies under the other): a gateway could not tell which a call is for`,
      });
      expect(await storedApis(context)).toEqual([]);
    },
  );

  describe("authorization", () => {
    it("answers a call without a token with UnauthenticatedError and stores nothing", async () => {
      const context = aContext();
      expect(await createApi(undefined, { name: "Anon", context, version: "1.0.0" })).toEqual(NO_TOKEN);
      expect(await storedApis(context)).toEqual([]);
    });

    it("answers a bad token with UnauthenticatedError and stores nothing", async () => {
      const context = aContext();
      expect(await createApi("not-a-token", { name: "Bad", context, version: "1.0.0" })).toEqual(BAD_TOKEN);
      expect(await storedApis(context)).toEqual([]);
    });

    it("answers a subscriber with ForbiddenError and stores nothing", async () => {
      const context = aContext();
      expect(await createApi(subscriberToken, { name: "Sub", context, version: "1.0.0" })).toEqual({
        __typename: "ForbiddenError",
        code: "FORBIDDEN",
        message: "this operation requires the admin role",
      });
      expect(await storedApis(context)).toEqual([]);
    });
  });

  describe("bad input", () => {
    const PATH_PATTERN = "must be a path pattern such as /search/{id} or /items/*";
    const SCOPE_TOKEN = "must be an RFC 6749 §3.3 scope token (no spaces or quotes)";
    it.each([
      ["an empty name", { name: "" }, "name", "name: must not be empty"],
      ["a blank name", { name: "   " }, "name", "name: must not be empty"],
      ["a 101-character name", { name: "n".repeat(101) }, "name", "name: must be at most 100 characters"],
      [
        "a name with a control character",
        { name: "a\u0007b" },
        "name",
        "name: must not contain control characters",
      ],
      [
        "a context without a leading slash",
        { context: "twitter" },
        "context",
        "context: must be a path such as /twitter",
      ],
      ["an empty context", { context: "" }, "context", "context: must be a path such as /twitter"],
      [
        "a context ending in a slash",
        { context: "/twitter/" },
        "context",
        "context: must be a path such as /twitter",
      ],
      [
        "a context with a space",
        { context: "/twit ter" },
        "context",
        "context: must be a path such as /twitter",
      ],
      [
        "a 201-character context",
        { context: `/${"c".repeat(200)}` },
        "context",
        "context: must be at most 200 characters",
      ],
      ["an empty version", { version: "" }, "version", "version: must not be empty"],
      [
        "a version with a space",
        { version: "1.0 beta" },
        "version",
        "version: may contain only letters, digits and . _ -",
      ],
      [
        "a version with a slash",
        { version: "1/0" },
        "version",
        "version: may contain only letters, digits and . _ -",
      ],
      [
        "a 33-character version",
        { version: "1".repeat(33) },
        "version",
        "version: must be at most 32 characters",
      ],
      [
        "a 1001-character description",
        { description: "d".repeat(1001) },
        "description",
        "description: must be at most 1000 characters",
      ],
      [
        "a scope with a space",
        { scopes: [{ name: "read write" }] },
        "scopes.0.name",
        `scopes.0.name: ${SCOPE_TOKEN}`,
      ],
      [
        "a scope with a quote",
        { scopes: [{ name: 'read"' }] },
        "scopes.0.name",
        `scopes.0.name: ${SCOPE_TOKEN}`,
      ],
      [
        "an empty scope name",
        { scopes: [{ name: "" }] },
        "scopes.0.name",
        "scopes.0.name: must not be empty",
      ],
      [
        "a 101-character scope name",
        { scopes: [{ name: "read" }, { name: "s".repeat(101) }] },
        "scopes.1.name",
        "scopes.1.name: must be at most 100 characters",
      ],
      [
        "duplicate scope names",
        { scopes: [{ name: "read" }, { name: "write" }, { name: "read" }] },
        "scopes",
        "scopes: scope names must be unique",
      ],
      [
        "a resource scope the API does not define",
        {
          scopes: [{ name: "read" }],
          resources: [{ method: "GET", pathPattern: "/items", scopes: ["read", "write"] }],
        },
        "resources.0.scopes",
        "resources.0.scopes: scope write is not defined by the API",
      ],
      [
        "a resource path without a leading slash",
        { resources: [{ method: "GET", pathPattern: "items" }] },
        "resources.0.pathPattern",
        `resources.0.pathPattern: ${PATH_PATTERN}`,
      ],
      [
        "a resource path with a space",
        { resources: [{ method: "GET", pathPattern: "/a b" }] },
        "resources.0.pathPattern",
        `resources.0.pathPattern: ${PATH_PATTERN}`,
      ],
      [
        "the same method and path twice",
        {
          resources: [
            { method: "GET", pathPattern: "/items" },
            { method: "GET", pathPattern: "/items" },
          ],
        },
        "resources.1",
        "resources.1: GET /items is listed twice",
      ],
    ])(
      "rejects %s with a ValidationError naming the field, storing nothing",
      async (_name, override, field, message) => {
        const input = { name: "Valid", context: aContext(), version: "1.0.0", ...override };
        const result = await createApi(adminToken, input);
        expect(result).toEqual({ __typename: "ValidationError", code: "VALIDATION_FAILED", field, message });
        expect(await storedApis(input.context)).toEqual([]);
      },
    );

    it("rejects more than 100 scopes", async () => {
      const context = aContext();
      const scopes = Array.from({ length: 101 }, (_, i) => ({ name: `s${i}` }));
      const result = await createApi(adminToken, { name: "Many", context, version: "1.0.0", scopes });
      expect(result).toMatchObject({
        __typename: "ValidationError",
        code: "VALIDATION_FAILED",
        field: "scopes",
      });
      expect(await storedApis(context)).toEqual([]);
    });

    it.each([
      ["a number for the version", { name: "N", context: "/numeric", version: 1 }],
      ["a missing context", { name: "N", version: "1.0.0" }],
      [
        "a method that is not an HTTP method",
        { name: "N", context: "/m", version: "1", resources: [{ method: "FETCH", pathPattern: "/x" }] },
      ],
      ["a null scope name", { name: "N", context: "/s", version: "1", scopes: [{ name: null }] }],
    ])("answers %s with HTTP 400 and GraphQL errors, never a 500", async (_name, input) => {
      const query = "mutation($input: CreateApiInput!) { createApi(input: $input) { __typename } }";
      const { status, body } = await postGraphQL(
        t,
        { query, variables: { input } },
        { authorization: `Bearer ${adminToken}` },
      );
      expect(status).toBe(400);
      expect(body.data).toBeUndefined();
      expect(body.errors).toEqual([expect.objectContaining({ message: expect.stringContaining("$input") })]);
    });
  });

  describe("duplicates", () => {
    it("answers a taken context and version with AlreadyExistsError and keeps the first API", async () => {
      const context = aContext();
      const first = await createApi(adminToken, {
        name: "First",
        context,
        version: "1.0.0",
        scopes: [{ name: "a" }],
      });
      const second = await createApi(adminToken, {
        name: "Second",
        context,
        version: "1.0.0",
        scopes: [{ name: "b" }],
      });
      expect(second).toEqual({
        __typename: "AlreadyExistsError",
        code: "ALREADY_EXISTS",
        message: "an API with this context and version already exists",
        resource: "Api",
        field: "context",
      });
      expect(await storedApis(context)).toEqual([{ id: first.api!.id, version: "1.0.0" }]);
      // The failed insert rolled back whole: no scope of the second API was left behind.
      const scopes = await t.app.deps.database.raw(
        "select s.name from api_scopes s join apis a on a.id = s.api_id where a.context = $1",
        [context],
      );
      expect(scopes).toEqual([{ name: "a" }]);
    });
  });
});

describe("apis", () => {
  it("lists every published API to a subscriber, ordered by context then version, with scopes and resources", async () => {
    const base = `/${uniqueName("list")}`;
    const admin = t.client(adminToken);
    const b2 = await createApiAs(admin, { name: "B", context: `${base}-b`, version: "2.0.0" });
    const a1 = await createApiAs(admin, {
      name: "A",
      context: `${base}-a`,
      version: "1.0.0",
      scopes: [{ name: "z-scope" }, { name: "a-scope", description: "first" }],
      resources: [{ method: "DELETE", pathPattern: "/items/{id}", scopes: ["z-scope"] }],
    });
    const b1 = await createApiAs(admin, { name: "B", context: `${base}-b`, version: "1.0.0" });

    const result = await listApis(subscriberToken);
    expect(result.__typename).toBe("QueryApisSuccess");
    const all = await t.app.deps.database.raw<{ id: string }>(
      "select id from apis order by context, version",
    );
    expect(result.data?.map((api) => api.id)).toEqual(all.map((row) => row.id));
    const mine = result.data?.filter((api) => api.context.startsWith(base));
    expect(mine?.map((api) => api.id)).toEqual([a1.id, b1.id, b2.id]);
    expect(mine?.[0]).toEqual({
      id: a1.id,
      name: "A",
      context: `${base}-a`,
      version: "1.0.0",
      description: null,
      scopes: [
        { name: "a-scope", description: "first" },
        { name: "z-scope", description: null },
      ],
      resources: [{ method: "DELETE", pathPattern: "/items/{id}", scopes: ["z-scope"] }],
    });
  });

  it("shows admins the same list as subscribers", async () => {
    const asAdmin = await listApis(adminToken);
    const asSubscriber = await listApis(subscriberToken);
    expect(asAdmin.data?.length).toBeGreaterThan(0);
    expect(asAdmin).toEqual(asSubscriber);
  });

  it("loads scopes and resources in batches: the statement count does not grow with the number of APIs", async () => {
    const count = async () => {
      t.resetStatements();
      const result = await listApis(subscriberToken);
      expect(result.__typename).toBe("QueryApisSuccess");
      return { statements: t.statements.length, apis: result.data?.length ?? 0 };
    };
    const before = await count();
    for (let i = 0; i < 3; i++) {
      await createApiAs(t.client(adminToken), {
        name: "Batch",
        context: aContext(),
        version: "1.0.0",
        scopes: [{ name: "s" }],
        resources: [{ method: "GET", pathPattern: "/", scopes: ["s"] }],
      });
    }
    const after = await count();
    expect(after.apis).toBe(before.apis + 3);
    // Authentication, the list, one batch of scopes, one batch of resources.
    expect(after.statements).toBe(before.statements);
    expect(after.statements).toBe(4);
  });

  it("answers a call without a token with UnauthenticatedError", async () => {
    expect(await listApis(undefined)).toEqual(NO_TOKEN);
  });

  it("answers a bad token with UnauthenticatedError", async () => {
    expect(await listApis("Bearer-nonsense")).toEqual(BAD_TOKEN);
  });
});
