import { gql } from "graphql-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import { UNKNOWN_ID, uniqueName } from "../support/fixtures.js";
import {
  createApiAs,
  createApplicationAs,
  createSubscriber,
  ERROR_FIELDS,
  loginAdmin,
  postGraphQL,
} from "../support/graphql.js";

const SUBSCRIPTION_FIELDS = "id tier applicationId api { id context }";

const SUBSCRIBE = gql`
  mutation Subscribe($input: SubscribeInput!) {
    subscribe(input: $input) {
      __typename
      ... on SubscribePayload { subscription { ${SUBSCRIPTION_FIELDS} } }
      ... on ValidationError { field }
      ... on AlreadyExistsError { resource field }
      ... on NotFoundError { resource id }
      ${ERROR_FIELDS}
    }
  }
`;

const UNSUBSCRIBE = gql`
  mutation Unsubscribe($input: UnsubscribeInput!) {
    unsubscribe(input: $input) {
      __typename
      ... on UnsubscribePayload { subscription { ${SUBSCRIPTION_FIELDS} } }
      ... on ValidationError { field }
      ... on NotFoundError { resource id }
      ${ERROR_FIELDS}
    }
  }
`;

const APPLICATION_SUBSCRIPTIONS = gql`
  query ApplicationSubscriptions($id: ID!) {
    application(id: $id) {
      __typename
      ... on Application { subscriptions { id tier api { id } } }
    }
  }
`;

interface Subscription {
  id: string;
  tier: string;
  applicationId: string;
  api: { id: string; context: string };
}
interface Outcome {
  __typename: string;
  code?: string;
  message?: string;
  field?: string;
  resource?: string;
  id?: string;
  subscription?: Subscription;
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

let t: TestApp;
let adminToken: string;
let alice: { id: string; token: string };
let bob: { id: string; token: string };
let api: { id: string; context: string };
let otherApi: { id: string; context: string };

async function newApi(): Promise<{ id: string; context: string }> {
  const context = `/${uniqueName("api")}`;
  const created = await createApiAs(t.client(adminToken), { name: "Api", context, version: "1.0.0" });
  return { id: created.id, context };
}

beforeAll(async () => {
  t = await startTestApp();
  adminToken = await loginAdmin(t);
  alice = await createSubscriber(t, adminToken, uniqueName("alice"));
  bob = await createSubscriber(t, adminToken, uniqueName("bob"));
  api = await newApi();
  otherApi = await newApi();
});
afterAll(() => t.stop());

async function subscribe(token: string | undefined, input: Record<string, unknown>): Promise<Outcome> {
  return (await t.client(token).request<{ subscribe: Outcome }>(SUBSCRIBE, { input })).subscribe;
}

async function unsubscribe(token: string | undefined, input: Record<string, unknown>): Promise<Outcome> {
  return (await t.client(token).request<{ unsubscribe: Outcome }>(UNSUBSCRIBE, { input })).unsubscribe;
}

/** Subscriptions stored for an application. */
const stored = (applicationId: string) =>
  t.app.deps.database.raw<{ id: string; api_id: string; tier: string }>(
    "select id, api_id, tier from subscriptions where application_id = $1 order by created_at",
    [applicationId],
  );

const aliceApp = () => createApplicationAs(t.client(alice.token), { name: uniqueName("Alice app") });
const bobApp = () => createApplicationAs(t.client(bob.token), { name: uniqueName("Bob app") });

describe("subscribe", () => {
  it("subscribes the owner's application at the Unlimited tier by default, and stores it", async () => {
    const app = await aliceApp();
    const result = await subscribe(alice.token, { applicationId: app.id, apiId: api.id });
    expect(result).toEqual({
      __typename: "SubscribePayload",
      subscription: {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        tier: "Unlimited",
        applicationId: app.id,
        api: { id: api.id, context: api.context },
      },
    });
    expect(await stored(app.id)).toEqual([
      { id: result.subscription!.id, api_id: api.id, tier: "Unlimited" },
    ]);
    const { application } = await t
      .client(alice.token)
      .request<{ application: { subscriptions: unknown[] } }>(APPLICATION_SUBSCRIPTIONS, { id: app.id });
    expect(application.subscriptions).toEqual([
      { id: result.subscription!.id, tier: "Unlimited", api: { id: api.id } },
    ]);
  });

  it("stores the requested tier", async () => {
    const app = await aliceApp();
    const result = await subscribe(alice.token, { applicationId: app.id, apiId: api.id, tier: "Bronze" });
    expect(result.subscription?.tier).toBe("Bronze");
    expect(await stored(app.id)).toEqual([{ id: result.subscription!.id, api_id: api.id, tier: "Bronze" }]);
  });

  it("subscribes one application to several APIs, and one API to several applications", async () => {
    const first = await aliceApp();
    const second = await bobApp();
    expect((await subscribe(alice.token, { applicationId: first.id, apiId: api.id })).__typename).toBe(
      "SubscribePayload",
    );
    expect((await subscribe(alice.token, { applicationId: first.id, apiId: otherApi.id })).__typename).toBe(
      "SubscribePayload",
    );
    expect((await subscribe(bob.token, { applicationId: second.id, apiId: api.id })).__typename).toBe(
      "SubscribePayload",
    );
    expect((await stored(first.id)).map((s) => s.api_id)).toEqual([api.id, otherApi.id]);
    expect((await stored(second.id)).map((s) => s.api_id)).toEqual([api.id]);
  });

  it("lets an admin subscribe any user's application", async () => {
    const app = await bobApp();
    const result = await subscribe(adminToken, { applicationId: app.id, apiId: api.id, tier: "Gold" });
    expect(result.subscription).toMatchObject({ applicationId: app.id, tier: "Gold" });
    expect(await stored(app.id)).toHaveLength(1);
  });

  describe("authorization", () => {
    it("answers another subscriber's application with NotFoundError and stores nothing", async () => {
      const app = await bobApp();
      expect(await subscribe(alice.token, { applicationId: app.id, apiId: api.id })).toEqual(
        notFound("Application", app.id),
      );
      expect(await stored(app.id)).toEqual([]);
    });

    it("answers a call without a token with UnauthenticatedError and stores nothing", async () => {
      const app = await aliceApp();
      expect(await subscribe(undefined, { applicationId: app.id, apiId: api.id })).toEqual(NO_TOKEN);
      expect(await stored(app.id)).toEqual([]);
    });

    it("answers a bad token with UnauthenticatedError and stores nothing", async () => {
      const app = await aliceApp();
      expect(await subscribe("not-a-token", { applicationId: app.id, apiId: api.id })).toEqual(BAD_TOKEN);
      expect(await stored(app.id)).toEqual([]);
    });
  });

  describe("bad input", () => {
    it.each([
      ["a valid UUID that names no application", UNKNOWN_ID],
      ["a string that is not a UUID", "not-a-uuid"],
      ["an empty string", ""],
    ])("answers an applicationId that is %s with NotFoundError", async (_name, applicationId) => {
      expect(await subscribe(alice.token, { applicationId, apiId: api.id })).toEqual(
        notFound("Application", applicationId),
      );
    });

    it.each([
      ["a valid UUID that names no API", UNKNOWN_ID],
      ["a string that is not a UUID", "not-a-uuid"],
      ["an empty string", ""],
    ])("answers an apiId that is %s with NotFoundError and stores nothing", async (_name, apiId) => {
      const app = await aliceApp();
      expect(await subscribe(alice.token, { applicationId: app.id, apiId })).toEqual(notFound("Api", apiId));
      expect(await stored(app.id)).toEqual([]);
    });

    it.each([
      ["a tier that does not exist", { tier: "Platinum" }],
      ["a tier in the wrong case", { tier: "gold" }],
      ["a missing apiId", { apiId: undefined }],
      ["an object for the applicationId", { applicationId: { id: "x" } }],
    ])("answers %s with HTTP 400 and GraphQL errors, never a 500", async (_name, override) => {
      const app = await aliceApp();
      const input = { applicationId: app.id, apiId: api.id, ...override };
      const query = "mutation($input: SubscribeInput!) { subscribe(input: $input) { __typename } }";
      const { status, body } = await postGraphQL(
        t,
        { query, variables: { input } },
        { authorization: `Bearer ${alice.token}` },
      );
      expect(status).toBe(400);
      expect(body.data).toBeUndefined();
      expect(body.errors).toEqual([expect.objectContaining({ message: expect.stringContaining("$input") })]);
      expect(await stored(app.id)).toEqual([]);
    });
  });

  describe("duplicates", () => {
    it("answers a second subscription to the same API with AlreadyExistsError and keeps the first", async () => {
      const app = await aliceApp();
      const first = await subscribe(alice.token, { applicationId: app.id, apiId: api.id, tier: "Silver" });
      const second = await subscribe(alice.token, { applicationId: app.id, apiId: api.id, tier: "Gold" });
      expect(second).toEqual({
        __typename: "AlreadyExistsError",
        code: "ALREADY_EXISTS",
        message: "the application is already subscribed to this API",
        resource: "Subscription",
        field: "apiId",
      });
      expect(await stored(app.id)).toEqual([{ id: first.subscription!.id, api_id: api.id, tier: "Silver" }]);
    });
  });
});

describe("unsubscribe", () => {
  async function subscribed(token: string, applicationId: string, apiId = api.id): Promise<Subscription> {
    const result = await subscribe(token, { applicationId, apiId });
    if (!result.subscription) throw new Error(`subscribe failed: ${result.code}`);
    return result.subscription;
  }

  it("removes the owner's subscription and returns it", async () => {
    const app = await aliceApp();
    const subscription = await subscribed(alice.token, app.id);
    expect(await unsubscribe(alice.token, { applicationId: app.id, apiId: api.id })).toEqual({
      __typename: "UnsubscribePayload",
      subscription,
    });
    expect(await stored(app.id)).toEqual([]);
    const { application } = await t
      .client(alice.token)
      .request<{ application: { subscriptions: unknown[] } }>(APPLICATION_SUBSCRIPTIONS, { id: app.id });
    expect(application.subscriptions).toEqual([]);
  });

  it("removes only that subscription: other APIs of the application and other applications keep theirs", async () => {
    const app = await aliceApp();
    const other = await bobApp();
    await subscribed(alice.token, app.id, api.id);
    const kept = await subscribed(alice.token, app.id, otherApi.id);
    const othersSubscription = await subscribed(bob.token, other.id, api.id);
    expect((await unsubscribe(alice.token, { applicationId: app.id, apiId: api.id })).__typename).toBe(
      "UnsubscribePayload",
    );
    expect(await stored(app.id)).toEqual([{ id: kept.id, api_id: otherApi.id, tier: "Unlimited" }]);
    expect(await stored(other.id)).toEqual([
      { id: othersSubscription.id, api_id: api.id, tier: "Unlimited" },
    ]);
  });

  it("allows subscribing again after unsubscribing", async () => {
    const app = await aliceApp();
    await subscribed(alice.token, app.id);
    await unsubscribe(alice.token, { applicationId: app.id, apiId: api.id });
    expect((await subscribe(alice.token, { applicationId: app.id, apiId: api.id })).__typename).toBe(
      "SubscribePayload",
    );
    expect(await stored(app.id)).toHaveLength(1);
  });

  it("lets an admin unsubscribe any user's application", async () => {
    const app = await bobApp();
    await subscribed(bob.token, app.id);
    expect((await unsubscribe(adminToken, { applicationId: app.id, apiId: api.id })).__typename).toBe(
      "UnsubscribePayload",
    );
    expect(await stored(app.id)).toEqual([]);
  });

  it("answers an API the application is not subscribed to with NotFoundError", async () => {
    const app = await aliceApp();
    await subscribed(alice.token, app.id, api.id);
    expect(await unsubscribe(alice.token, { applicationId: app.id, apiId: otherApi.id })).toEqual(
      notFound("Subscription", otherApi.id),
    );
    expect(await stored(app.id)).toHaveLength(1);
  });

  it("answers a second unsubscribe with NotFoundError", async () => {
    const app = await aliceApp();
    await subscribed(alice.token, app.id);
    await unsubscribe(alice.token, { applicationId: app.id, apiId: api.id });
    expect(await unsubscribe(alice.token, { applicationId: app.id, apiId: api.id })).toEqual(
      notFound("Subscription", api.id),
    );
  });

  describe("authorization", () => {
    it("answers another subscriber's application with NotFoundError and keeps the subscription", async () => {
      const app = await bobApp();
      await subscribed(bob.token, app.id);
      expect(await unsubscribe(alice.token, { applicationId: app.id, apiId: api.id })).toEqual(
        notFound("Application", app.id),
      );
      expect(await stored(app.id)).toHaveLength(1);
    });

    it("answers a call without a token with UnauthenticatedError and keeps the subscription", async () => {
      const app = await aliceApp();
      await subscribed(alice.token, app.id);
      expect(await unsubscribe(undefined, { applicationId: app.id, apiId: api.id })).toEqual(NO_TOKEN);
      expect(await stored(app.id)).toHaveLength(1);
    });

    it("answers a bad token with UnauthenticatedError and keeps the subscription", async () => {
      const app = await aliceApp();
      await subscribed(alice.token, app.id);
      expect(await unsubscribe("not-a-token", { applicationId: app.id, apiId: api.id })).toEqual(BAD_TOKEN);
      expect(await stored(app.id)).toHaveLength(1);
    });
  });

  describe("bad input", () => {
    it.each([
      ["a valid UUID that names no application", UNKNOWN_ID],
      ["a string that is not a UUID", "not-a-uuid"],
    ])("answers an applicationId that is %s with NotFoundError", async (_name, applicationId) => {
      expect(await unsubscribe(alice.token, { applicationId, apiId: api.id })).toEqual(
        notFound("Application", applicationId),
      );
    });

    it.each([
      ["a valid UUID that names no API", UNKNOWN_ID],
      ["a string that is not a UUID", "not-a-uuid"],
    ])("answers an apiId that is %s with NotFoundError", async (_name, apiId) => {
      const app = await aliceApp();
      await subscribed(alice.token, app.id);
      expect(await unsubscribe(alice.token, { applicationId: app.id, apiId })).toEqual(
        notFound("Subscription", apiId),
      );
      expect(await stored(app.id)).toHaveLength(1);
    });

    it.each([
      ["a missing applicationId", { apiId: UNKNOWN_ID }],
      ["a boolean apiId", { applicationId: UNKNOWN_ID, apiId: false }],
      ["an unknown input field", { applicationId: UNKNOWN_ID, apiId: UNKNOWN_ID, tier: "Gold" }],
    ])("answers %s with HTTP 400 and GraphQL errors, never a 500", async (_name, input) => {
      const query = "mutation($input: UnsubscribeInput!) { unsubscribe(input: $input) { __typename } }";
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
});
