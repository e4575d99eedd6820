import { gql } from "graphql-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import { insertApplicationToken, UNKNOWN_ID, uniqueName } from "../support/fixtures.js";
import {
  createApiAs,
  createApplicationAs,
  createSubscriber,
  ERROR_FIELDS,
  loginAdmin,
  postGraphQL,
  SUBSCRIBE,
} from "../support/graphql.js";

const APPLICATION_FIELDS =
  "id name description throttlingTier tokenFormat owner { id username } subscriptions { tier api { context } } keys { keyType }";

const CREATE_APPLICATION = gql`
  mutation CreateApplication($input: CreateApplicationInput!) {
    createApplication(input: $input) {
      __typename
      ... on CreateApplicationPayload { application { ${APPLICATION_FIELDS} } }
      ... on ValidationError { field }
      ... on AlreadyExistsError { resource field }
      ... on NotFoundError { resource id }
      ${ERROR_FIELDS}
    }
  }
`;

const APPLICATIONS = gql`
  query Applications($ownerId: ID) {
    applications(ownerId: $ownerId) {
      __typename
      ... on QueryApplicationsSuccess { data { ${APPLICATION_FIELDS} } }
      ${ERROR_FIELDS}
    }
  }
`;

const APPLICATION = gql`
  query Application($id: ID!) {
    application(id: $id) {
      __typename
      ... on Application { ${APPLICATION_FIELDS} }
      ... on NotFoundError { resource notFoundId: id }
      ${ERROR_FIELDS}
    }
  }
`;

const DELETE_APPLICATION = gql`
  mutation DeleteApplication($input: DeleteApplicationInput!) {
    deleteApplication(input: $input) {
      __typename
      ... on DeleteApplicationPayload { application { id name owner { username } } }
      ... on NotFoundError { resource id }
      ${ERROR_FIELDS}
    }
  }
`;

interface Application {
  id: string;
  name: string;
  description: string | null;
  throttlingTier: string;
  tokenFormat: string;
  owner: { id: string; username: string };
  subscriptions: { tier: string; api: { context: string } }[];
  keys: { keyType: string }[];
}
interface Outcome {
  __typename: string;
  code?: string;
  message?: string;
  field?: string;
  resource?: string;
  id?: string;
  notFoundId?: string;
  application?: Application;
  data?: Application[];
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
const notFound = (resource: string, id: string) => ({
  __typename: "NotFoundError",
  code: "NOT_FOUND",
  message: `${resource} not found`,
  resource,
  id,
});

interface Subscriber {
  id: string;
  token: string;
  username: string;
}

let t: TestApp;
let adminToken: string;
let alice: Subscriber;
let bob: Subscriber;

async function newSubscriber(prefix: string): Promise<Subscriber> {
  const username = uniqueName(prefix);
  return { ...(await createSubscriber(t, adminToken, username)), username };
}

beforeAll(async () => {
  // A statement-count test lives here: keep the sweeper's background statements out of it.
  t = await startTestApp({ env: { SWEEPER_INTERVAL_MS: "3600000" } });
  adminToken = await loginAdmin(t);
  alice = await newSubscriber("alice");
  bob = await newSubscriber("bob");
});
afterAll(() => t.stop());

async function createApplication(
  token: string | undefined,
  input: Record<string, unknown>,
): Promise<Outcome> {
  return (await t.client(token).request<{ createApplication: Outcome }>(CREATE_APPLICATION, { input }))
    .createApplication;
}

async function listApplications(token: string | undefined, ownerId?: string): Promise<Outcome> {
  return (await t.client(token).request<{ applications: Outcome }>(APPLICATIONS, { ownerId })).applications;
}

async function getApplication(token: string | undefined, id: string): Promise<Outcome> {
  return (await t.client(token).request<{ application: Outcome }>(APPLICATION, { id })).application;
}

async function deleteApplication(token: string | undefined, id: string): Promise<Outcome> {
  return (
    await t.client(token).request<{ deleteApplication: Outcome }>(DELETE_APPLICATION, { input: { id } })
  ).deleteApplication;
}

const raw = <T = Record<string, unknown>>(sql: string, params?: unknown[]) =>
  t.app.deps.database.raw<T>(sql, params);

/** Applications stored under a name, with their owners. */
const storedByName = (name: string) =>
  raw<{ id: string; owner_id: string }>(
    "select id, owner_id from applications where name = $1 order by created_at",
    [name],
  );

const applicationExists = async (id: string) =>
  (await raw("select 1 from applications where id = $1", [id])).length === 1;

describe("createApplication", () => {
  it("creates an application owned by the calling subscriber, with the default tier and token format", async () => {
    const name = uniqueName("Alice app");
    const result = await createApplication(alice.token, { name });
    expect(result).toEqual({
      __typename: "CreateApplicationPayload",
      application: {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name,
        description: null,
        throttlingTier: "Unlimited",
        tokenFormat: "OPAQUE",
        owner: { id: alice.id, username: alice.username },
        subscriptions: [],
        keys: [],
      },
    });
    expect(
      await raw("select owner_id, name, throttling_tier, token_format from applications where id = $1", [
        result.application!.id,
      ]),
    ).toEqual([{ owner_id: alice.id, name, throttling_tier: "Unlimited", token_format: "OPAQUE" }]);
  });

  it("stores the requested tier, token format and description, with the name trimmed", async () => {
    const name = uniqueName("JWT app");
    const result = await createApplication(alice.token, {
      name: `  ${name}  `,
      description: "Issues JWTs",
      throttlingTier: "Gold",
      tokenFormat: "JWT",
    });
    expect(result.application).toMatchObject({
      name,
      description: "Issues JWTs",
      throttlingTier: "Gold",
      tokenFormat: "JWT",
    });
    expect(
      await raw("select name, description, throttling_tier, token_format from applications where id = $1", [
        result.application!.id,
      ]),
    ).toEqual([{ name, description: "Issues JWTs", throttling_tier: "Gold", token_format: "JWT" }]);
  });

  it("lets an admin create an application for another user through ownerId", async () => {
    const name = uniqueName("Made for Bob");
    const result = await createApplication(adminToken, { name, ownerId: bob.id });
    expect(result.application?.owner).toEqual({ id: bob.id, username: bob.username });
    expect(await storedByName(name)).toEqual([{ id: result.application!.id, owner_id: bob.id }]);
    expect((await getApplication(bob.token, result.application!.id)).__typename).toBe("Application");
  });

  it("accepts a subscriber's own id as ownerId", async () => {
    const name = uniqueName("Own id");
    const result = await createApplication(alice.token, { name, ownerId: alice.id });
    expect(result.application?.owner.id).toBe(alice.id);
    expect(await storedByName(name)).toEqual([{ id: result.application!.id, owner_id: alice.id }]);
  });

  it("answers a subscriber naming another user as owner with NotFoundError, storing nothing", async () => {
    const name = uniqueName("Not yours");
    expect(await createApplication(alice.token, { name, ownerId: bob.id })).toEqual(notFound("User", bob.id));
    expect(await storedByName(name)).toEqual([]);
  });

  it.each([
    ["a valid UUID that names no user", UNKNOWN_ID],
    ["a string that is not a UUID", "not-a-uuid"],
  ])("answers an admin naming %s as owner with NotFoundError", async (_name, ownerId) => {
    const name = uniqueName("Ghost owner");
    expect(await createApplication(adminToken, { name, ownerId })).toEqual(notFound("User", ownerId));
    expect(await storedByName(name)).toEqual([]);
  });

  describe("authorization", () => {
    it("answers a call without a token with UnauthenticatedError and stores nothing", async () => {
      const name = uniqueName("Anon");
      expect(await createApplication(undefined, { name })).toEqual(NO_TOKEN);
      expect(await storedByName(name)).toEqual([]);
    });

    it("answers a bad token with UnauthenticatedError and stores nothing", async () => {
      const name = uniqueName("Bad token");
      expect(await createApplication("not-a-token", { name })).toEqual(BAD_TOKEN);
      expect(await storedByName(name)).toEqual([]);
    });
  });

  describe("bad input", () => {
    it.each([
      ["an empty name", { name: "" }, "name", "name: must not be empty"],
      ["a blank name", { name: "   " }, "name", "name: must not be empty"],
      ["a 101-character name", { name: "n".repeat(101) }, "name", "name: must be at most 100 characters"],
      ["a name with a tab", { name: "a\tb" }, "name", "name: must not contain control characters"],
      [
        "a name with a right-to-left override",
        { name: "invoice\u202efdp.exe" },
        "name",
        "name: must not contain control characters",
      ],
      ["a name with a C1 control", { name: "a\u0085b" }, "name", "name: must not contain control characters"],
      [
        "a name with a line separator",
        { name: "a\u2028b" },
        "name",
        "name: must not contain control characters",
      ],
      [
        "a name with a right-to-left mark",
        { name: "a\u200fb" },
        "name",
        "name: must not contain control characters",
      ],
      ["an empty description", { description: "" }, "description", "description: must not be empty"],
      [
        "a 1001-character description",
        { description: "d".repeat(1001) },
        "description",
        "description: must be at most 1000 characters",
      ],
    ])(
      "rejects %s with a ValidationError naming the field, storing nothing",
      async (_name, override, field, message) => {
        const before = await raw<{ n: number }>(
          "select count(*)::int as n from applications where owner_id = $1",
          [alice.id],
        );
        const result = await createApplication(alice.token, { name: uniqueName("Valid"), ...override });
        expect(result).toEqual({ __typename: "ValidationError", code: "VALIDATION_FAILED", field, message });
        const after = await raw<{ n: number }>(
          "select count(*)::int as n from applications where owner_id = $1",
          [alice.id],
        );
        expect(after).toEqual(before);
      },
    );

    it.each([
      ["a throttling tier that does not exist", { name: "x", throttlingTier: "Platinum" }],
      ["a token format in the wrong case", { name: "x", tokenFormat: "jwt" }],
      ["a number for the name", { name: 42 }],
      ["a missing name", { description: "no name" }],
    ])("answers %s with HTTP 400 and GraphQL errors, never a 500", async (_name, input) => {
      const query =
        "mutation($input: CreateApplicationInput!) { createApplication(input: $input) { __typename } }";
      const { status, body } = await postGraphQL(
        t,
        { query, variables: { input } },
        { authorization: `Bearer ${alice.token}` },
      );
      expect(status).toBe(400);
      expect(body.data).toBeUndefined();
      expect(body.errors).toEqual([expect.objectContaining({ message: expect.stringContaining("$input") })]);
    });
  });

  describe("duplicates", () => {
    it("answers a name the owner already uses with AlreadyExistsError and keeps the first", async () => {
      const name = uniqueName("Twice");
      const first = await createApplication(alice.token, { name });
      const second = await createApplication(alice.token, { name: ` ${name} `, tokenFormat: "JWT" });
      expect(second).toEqual({
        __typename: "AlreadyExistsError",
        code: "ALREADY_EXISTS",
        message: "Application with this name already exists",
        resource: "Application",
        field: "name",
      });
      expect(await storedByName(name)).toEqual([{ id: first.application!.id, owner_id: alice.id }]);
    });

    it("answers an admin creating a duplicate for another owner with AlreadyExistsError", async () => {
      const name = uniqueName("Bob twice");
      await createApplicationAs(t.client(bob.token), { name });
      const result = await createApplication(adminToken, { name, ownerId: bob.id });
      expect(result).toMatchObject({
        __typename: "AlreadyExistsError",
        resource: "Application",
        field: "name",
      });
      expect(await storedByName(name)).toHaveLength(1);
    });

    it("lets different owners use the same name", async () => {
      const name = uniqueName("Shared name");
      const a = await createApplication(alice.token, { name });
      const b = await createApplication(bob.token, { name });
      expect(b.__typename).toBe("CreateApplicationPayload");
      expect(await storedByName(name)).toEqual([
        { id: a.application!.id, owner_id: alice.id },
        { id: b.application!.id, owner_id: bob.id },
      ]);
    });
  });
});

describe("applications", () => {
  const ids = (outcome: Outcome) => outcome.data?.map((a) => a.id);
  const storedIds = async (ownerId?: string) =>
    (
      await raw<{ id: string }>(
        `select id from applications ${ownerId ? "where owner_id = $1" : ""} order by created_at, id`,
        ownerId ? [ownerId] : [],
      )
    ).map((r) => r.id);

  it("shows a subscriber only its own applications", async () => {
    const carol = await newSubscriber("carol");
    const c1 = await createApplicationAs(t.client(carol.token), { name: "C1" });
    const c2 = await createApplicationAs(t.client(carol.token), { name: "C2" });
    await createApplicationAs(t.client(bob.token), { name: uniqueName("Bob's") });
    const result = await listApplications(carol.token);
    expect(result.__typename).toBe("QueryApplicationsSuccess");
    expect(ids(result)).toEqual([c1.id, c2.id]);
    expect(result.data?.every((a) => a.owner.id === carol.id)).toBe(true);
  });

  it("ignores a subscriber's ownerId filter naming someone else", async () => {
    await createApplicationAs(t.client(bob.token), { name: uniqueName("Bob hidden") });
    const result = await listApplications(alice.token, bob.id);
    expect(ids(result)).toEqual(await storedIds(alice.id));
    expect(result.data?.some((a) => a.owner.id === bob.id)).toBe(false);
  });

  it("shows an admin every application", async () => {
    const result = await listApplications(adminToken);
    expect(ids(result)).toEqual(await storedIds());
    const owners = new Set(result.data?.map((a) => a.owner.id));
    expect(owners.has(alice.id) && owners.has(bob.id)).toBe(true);
  });

  it("lets an admin filter by owner", async () => {
    const result = await listApplications(adminToken, bob.id);
    expect(ids(result)).toEqual(await storedIds(bob.id));
    expect(result.data?.length).toBeGreaterThan(0);
    expect(result.data?.every((a) => a.owner.username === bob.username)).toBe(true);
  });

  it.each([
    ["a valid UUID that names no user", UNKNOWN_ID],
    ["a string that is not a UUID", "not-a-uuid"],
    ["36 hyphens (the length and characters of a UUID)", "-".repeat(36)],
    ["a UUID with its hyphens moved", "0000000000000-4000-8000-00000000-0000"],
  ])("answers an admin filtering by %s with an empty list", async (_name, ownerId) => {
    expect(await listApplications(adminToken, ownerId)).toEqual({
      __typename: "QueryApplicationsSuccess",
      data: [],
    });
  });

  it("loads owners, subscriptions and keys in batches: the statement count does not grow with the list", async () => {
    const count = async () => {
      t.resetStatements();
      const result = await listApplications(adminToken);
      return { statements: t.statements.length, applications: result.data?.length ?? 0 };
    };
    const dave = await newSubscriber("dave");
    const api = await createApiAs(t.client(adminToken), {
      name: "Batch",
      context: `/${uniqueName("batch")}`,
      version: "1",
    });
    const addSubscribedApplication = async (name: string) => {
      const app = await createApplicationAs(t.client(dave.token), { name });
      await t.client(dave.token).request(SUBSCRIBE, { input: { applicationId: app.id, apiId: api.id } });
    };
    await addSubscribedApplication("D1");
    const before = await count();
    for (const name of ["D2", "D3", "D4"]) await addSubscribedApplication(name);
    const after = await count();
    expect(after.applications).toBe(before.applications + 3);
    // Authentication, the list, then one batch each of owners, subscriptions, keys and APIs.
    expect(after.statements).toBe(before.statements);
    expect(after.statements).toBe(6);
  });

  it("answers a call without a token with UnauthenticatedError", async () => {
    expect(await listApplications(undefined)).toEqual(NO_TOKEN);
  });

  it("answers a bad token with UnauthenticatedError", async () => {
    expect(await listApplications("not-a-token")).toEqual(BAD_TOKEN);
  });
});

describe("application(id)", () => {
  it("returns the owner's application with its subscriptions", async () => {
    const app = await createApplicationAs(t.client(alice.token), { name: uniqueName("Detail") });
    const context = `/${uniqueName("detail")}`;
    const api = await createApiAs(t.client(adminToken), { name: "Detail", context, version: "1.0.0" });
    await t
      .client(alice.token)
      .request(SUBSCRIBE, { input: { applicationId: app.id, apiId: api.id, tier: "Silver" } });
    expect(await getApplication(alice.token, app.id)).toEqual({
      __typename: "Application",
      id: app.id,
      name: app.name,
      description: null,
      throttlingTier: "Unlimited",
      tokenFormat: "OPAQUE",
      owner: { id: alice.id, username: alice.username },
      subscriptions: [{ tier: "Silver", api: { context } }],
      keys: [],
    });
  });

  it("finds an application by its id in upper case", async () => {
    const app = await createApplicationAs(t.client(alice.token), { name: uniqueName("Upper") });
    expect(await getApplication(alice.token, app.id.toUpperCase())).toMatchObject({
      __typename: "Application",
      id: app.id,
    });
  });

  it("returns any user's application to an admin", async () => {
    const app = await createApplicationAs(t.client(bob.token), { name: uniqueName("For admin") });
    expect(await getApplication(adminToken, app.id)).toMatchObject({
      __typename: "Application",
      id: app.id,
      owner: { id: bob.id },
    });
  });

  it("answers another subscriber with NotFoundError, as if the application did not exist", async () => {
    const app = await createApplicationAs(t.client(bob.token), { name: uniqueName("Private") });
    const result = await getApplication(alice.token, app.id);
    expect(result).toEqual({
      __typename: "NotFoundError",
      code: "NOT_FOUND",
      message: "Application not found",
      resource: "Application",
      notFoundId: app.id,
    });
    const missing = await getApplication(alice.token, UNKNOWN_ID);
    expect({ ...result, notFoundId: undefined }).toEqual({ ...missing, notFoundId: undefined });
  });

  it.each([
    ["a valid UUID that names no application", UNKNOWN_ID],
    ["a string that is not a UUID", "not-a-uuid"],
    ["an empty string", ""],
  ])("answers %s with NotFoundError", async (_name, id) => {
    expect(await getApplication(adminToken, id)).toEqual({
      __typename: "NotFoundError",
      code: "NOT_FOUND",
      message: "Application not found",
      resource: "Application",
      notFoundId: id,
    });
  });

  it("answers a call without a token with UnauthenticatedError", async () => {
    const app = await createApplicationAs(t.client(alice.token), { name: uniqueName("Anon read") });
    expect(await getApplication(undefined, app.id)).toEqual(NO_TOKEN);
  });

  it("answers a bad token with UnauthenticatedError", async () => {
    const app = await createApplicationAs(t.client(alice.token), { name: uniqueName("Bad read") });
    expect(await getApplication("not-a-token", app.id)).toEqual(BAD_TOKEN);
  });

  it("answers an id of the wrong GraphQL type with HTTP 400", async () => {
    const query = "query($id: ID!) { application(id: $id) { __typename } }";
    const { status, body } = await postGraphQL(
      t,
      { query, variables: { id: { nested: true } } },
      { authorization: `Bearer ${alice.token}` },
    );
    expect(status).toBe(400);
    expect(body.data).toBeUndefined();
    expect(body.errors).toEqual([expect.objectContaining({ message: expect.stringContaining("$id") })]);
  });
});

describe("deleteApplication", () => {
  it("deletes the owner's application with its subscriptions, after which it is not found", async () => {
    const app = await createApplicationAs(t.client(alice.token), { name: uniqueName("Doomed") });
    const api = await createApiAs(t.client(adminToken), {
      name: "Doomed",
      context: `/${uniqueName("doomed")}`,
      version: "1",
    });
    await t.client(alice.token).request(SUBSCRIBE, { input: { applicationId: app.id, apiId: api.id } });

    expect(await deleteApplication(alice.token, app.id)).toEqual({
      __typename: "DeleteApplicationPayload",
      application: { id: app.id, name: app.name, owner: { username: alice.username } },
    });
    expect(await getApplication(alice.token, app.id)).toMatchObject({
      __typename: "NotFoundError",
      notFoundId: app.id,
    });
    expect(await applicationExists(app.id)).toBe(false);
    expect(await raw("select id from subscriptions where application_id = $1", [app.id])).toEqual([]);
    // The API itself is untouched.
    expect(await raw("select id from apis where id = $1", [api.id])).toEqual([{ id: api.id }]);
  });

  it("revokes the application's tokens with an APPLICATION_DELETED event", async () => {
    const app = await createApplicationAs(t.client(alice.token), { name: uniqueName("Tokens") });
    const tokenId = await insertApplicationToken(t, app.id);
    expect((await deleteApplication(alice.token, app.id)).__typename).toBe("DeleteApplicationPayload");
    expect(
      await raw(
        "select type, reason, application_id, actor_id from token_events where token_id = $1 order by id",
        [tokenId],
      ),
    ).toEqual([
      { type: "REVOKED", reason: "APPLICATION_DELETED", application_id: app.id, actor_id: alice.id },
    ]);
  });

  it("lets an admin delete any user's application", async () => {
    const app = await createApplicationAs(t.client(bob.token), { name: uniqueName("Admin deletes") });
    expect((await deleteApplication(adminToken, app.id)).application?.owner).toEqual({
      username: bob.username,
    });
    expect(await applicationExists(app.id)).toBe(false);
  });

  it("answers another subscriber with NotFoundError and deletes nothing", async () => {
    const app = await createApplicationAs(t.client(bob.token), { name: uniqueName("Keep") });
    expect(await deleteApplication(alice.token, app.id)).toEqual(notFound("Application", app.id));
    expect(await applicationExists(app.id)).toBe(true);
  });

  it("answers a call without a token with UnauthenticatedError and deletes nothing", async () => {
    const app = await createApplicationAs(t.client(alice.token), { name: uniqueName("Anon delete") });
    expect(await deleteApplication(undefined, app.id)).toEqual(NO_TOKEN);
    expect(await applicationExists(app.id)).toBe(true);
  });

  it("answers a bad token with UnauthenticatedError and deletes nothing", async () => {
    const app = await createApplicationAs(t.client(alice.token), { name: uniqueName("Bad delete") });
    expect(await deleteApplication("not-a-token", app.id)).toEqual(BAD_TOKEN);
    expect(await applicationExists(app.id)).toBe(true);
  });

  it.each([
    ["a valid UUID that names no application", UNKNOWN_ID],
    ["a string that is not a UUID", "not-a-uuid"],
  ])("answers %s with NotFoundError", async (_name, id) => {
    expect(await deleteApplication(alice.token, id)).toEqual(notFound("Application", id));
  });

  it("answers a second deletion with NotFoundError", async () => {
    const app = await createApplicationAs(t.client(alice.token), { name: uniqueName("Once") });
    expect((await deleteApplication(alice.token, app.id)).__typename).toBe("DeleteApplicationPayload");
    expect(await deleteApplication(alice.token, app.id)).toEqual(notFound("Application", app.id));
  });

  it("answers an input of the wrong GraphQL type with HTTP 400", async () => {
    const query =
      "mutation($input: DeleteApplicationInput!) { deleteApplication(input: $input) { __typename } }";
    const { status, body } = await postGraphQL(
      t,
      { query, variables: { input: { id: 1.5 } } },
      { authorization: `Bearer ${alice.token}` },
    );
    expect(status).toBe(400);
    expect(body.data).toBeUndefined();
    expect(body.errors).toEqual([expect.objectContaining({ message: expect.stringContaining("$input") })]);
  });
});
