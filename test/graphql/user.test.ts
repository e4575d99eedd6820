import { gql } from "graphql-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, startTestApp, type TestApp } from "../support/app.js";
import { insertApplicationToken, UNKNOWN_ID, uniqueName } from "../support/fixtures.js";
import {
  createApiAs,
  createApplicationAs,
  createSubscriber,
  ERROR_FIELDS,
  loginAdmin,
  loginAs,
  postGraphQL,
  SUBSCRIBE,
} from "../support/graphql.js";

const CREATE_USER = gql`
  mutation CreateUser($input: CreateUserInput!) {
    createUser(input: $input) {
      __typename
      ... on CreateUserPayload { user { id username roles userStoreDomain disabled } }
      ... on ValidationError { field }
      ... on AlreadyExistsError { resource field }
      ... on NotFoundError { resource id }
      ${ERROR_FIELDS}
    }
  }
`;

const DELETE_USER = gql`
  mutation DeleteUser($input: DeleteUserInput!) {
    deleteUser(input: $input) {
      __typename
      ... on DeleteUserPayload { user { id username } }
      ... on NotFoundError { resource id }
      ${ERROR_FIELDS}
    }
  }
`;

const ME = gql`query Me { me { __typename ... on User { id username } } }`;

interface User {
  id: string;
  username: string;
  roles: string[];
  userStoreDomain: string;
  disabled: boolean;
}
interface Outcome {
  __typename: string;
  code?: string;
  message?: string;
  field?: string;
  resource?: string;
  id?: string;
  user?: User;
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
const FORBIDDEN = {
  __typename: "ForbiddenError",
  code: "FORBIDDEN",
  message: "this operation requires the admin role",
};

let t: TestApp;
let adminToken: string;
let adminId: string;

beforeAll(async () => {
  t = await startTestApp();
  adminToken = await loginAdmin(t);
  const [admin] = await t.app.deps.database.raw<{ id: string }>("select id from users where username = $1", [
    ADMIN.username,
  ]);
  adminId = admin!.id;
});
afterAll(() => t.stop());

async function createUser(token: string | undefined, input: Record<string, unknown>): Promise<Outcome> {
  return (await t.client(token).request<{ createUser: Outcome }>(CREATE_USER, { input })).createUser;
}

async function deleteUser(token: string | undefined, id: string): Promise<Outcome> {
  return (await t.client(token).request<{ deleteUser: Outcome }>(DELETE_USER, { input: { id } })).deleteUser;
}

/** Users stored under `username`, compared as the unique index does (case-insensitively). */
async function storedUsers(username: string) {
  return t.app.deps.database.raw<{ id: string; username: string; roles: string[]; password_hash: string }>(
    "select id, username, roles, user_store_domain, password_hash from users where lower(username) = lower($1)",
    [username],
  );
}

async function userExists(id: string): Promise<boolean> {
  const rows = await t.app.deps.database.raw("select 1 from users where id = $1", [id]);
  return rows.length === 1;
}

describe("createUser", () => {
  it("creates a subscriber in the PRIMARY user store by default, storing a password hash, and the user can log in", async () => {
    const username = uniqueName("dana");
    const result = await createUser(adminToken, { username, password: "dana-password" });
    expect(result).toEqual({
      __typename: "CreateUserPayload",
      user: {
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        username,
        roles: ["SUBSCRIBER"],
        userStoreDomain: "PRIMARY",
        disabled: false,
      },
    });
    const [row] = await storedUsers(username);
    expect(row).toMatchObject({
      id: result.user!.id,
      username,
      roles: ["subscriber"],
      user_store_domain: "PRIMARY",
    });
    expect(row!.password_hash).not.toContain("dana-password");
    expect(row!.password_hash.length).toBeGreaterThan(40);
    await expect(loginAs(t, username, "dana-password")).resolves.toMatch(/^tmat_/);
  });

  it("creates an admin when asked, who can then create users", async () => {
    const username = uniqueName("root");
    const result = await createUser(adminToken, { username, password: "root-password", roles: ["ADMIN"] });
    expect(result.user).toMatchObject({ username, roles: ["ADMIN"] });
    const token = await loginAs(t, username, "root-password");
    const other = await createUser(token, { username: uniqueName("made-by-admin"), password: "password-1" });
    expect(other.__typename).toBe("CreateUserPayload");
  });

  it("stores repeated roles once", async () => {
    const username = uniqueName("twice");
    const result = await createUser(adminToken, {
      username,
      password: "twice-password",
      roles: ["ADMIN", "ADMIN"],
    });
    expect(result.user?.roles).toEqual(["ADMIN"]);
    const [row] = await storedUsers(username);
    expect(row?.roles).toEqual(["admin"]);
  });

  describe("authorization", () => {
    it("answers a call without a token with UnauthenticatedError and stores nothing", async () => {
      const username = uniqueName("anon");
      expect(await createUser(undefined, { username, password: "password-1" })).toEqual(NO_TOKEN);
      expect(await storedUsers(username)).toEqual([]);
    });

    it("answers a bad token with UnauthenticatedError and stores nothing", async () => {
      const username = uniqueName("badtoken");
      expect(await createUser("not-a-token", { username, password: "password-1" })).toEqual(BAD_TOKEN);
      expect(await storedUsers(username)).toEqual([]);
    });

    it("answers a subscriber with ForbiddenError and stores nothing", async () => {
      const subscriber = await createSubscriber(t, adminToken, uniqueName("sub"));
      const username = uniqueName("by-subscriber");
      expect(
        await createUser(subscriber.token, { username, password: "password-1", roles: ["ADMIN"] }),
      ).toEqual(FORBIDDEN);
      expect(await storedUsers(username)).toEqual([]);
    });
  });

  describe("bad input", () => {
    it.each([
      ["an empty username", { username: "" }, "username", "username: must be at least 3 characters"],
      ["a two-character username", { username: "ab" }, "username", "username: must be at least 3 characters"],
      [
        "a 65-character username",
        { username: "u".repeat(65) },
        "username",
        "username: must be at most 64 characters",
      ],
      [
        "a username with a space",
        { username: "bad name" },
        "username",
        "username: may contain only letters, digits and . _ @ -",
      ],
      ["an empty password", { password: "" }, "password", "password: must be at least 8 characters"],
      [
        "a seven-character password",
        { password: "1234567" },
        "password",
        "password: must be at least 8 characters",
      ],
      [
        "a 257-character password",
        { password: "p".repeat(257) },
        "password",
        "password: must be at most 256 characters",
      ],
      [
        "a password with a line feed",
        { password: "line1\nline2-pw" },
        "password",
        "password: must not contain control characters (a tab aside)",
      ],
      ["an empty role list", { roles: [] }, "roles", "roles: must name at least one role"],
      [
        "a lower-case user store domain",
        { userStoreDomain: "secondary" },
        "userStoreDomain",
        "userStoreDomain: must be upper-case letters, digits and _",
      ],
      [
        "an empty user store domain",
        { userStoreDomain: "" },
        "userStoreDomain",
        "userStoreDomain: must be upper-case letters, digits and _",
      ],
    ])(
      "rejects %s with a ValidationError naming the field, storing nothing",
      async (_name, override, field, message) => {
        const input = { username: uniqueName("valid"), password: "valid-password", ...override };
        const result = await createUser(adminToken, input);
        expect(result).toEqual({ __typename: "ValidationError", code: "VALIDATION_FAILED", field, message });
        expect(await storedUsers(input.username)).toEqual([]);
      },
    );

    it("rejects an oversized user store domain name with a ValidationError", async () => {
      const username = uniqueName("bigdomain");
      const result = await createUser(adminToken, {
        username,
        password: "password-1",
        userStoreDomain: "D".repeat(33),
      });
      expect(result).toMatchObject({
        __typename: "ValidationError",
        code: "VALIDATION_FAILED",
        field: "userStoreDomain",
      });
      expect(await storedUsers(username)).toEqual([]);
    });

    it("answers a user store domain that does not exist with NotFoundError", async () => {
      const username = uniqueName("nodomain");
      const result = await createUser(adminToken, {
        username,
        password: "password-1",
        userStoreDomain: "SECONDARY",
      });
      expect(result).toEqual({
        __typename: "NotFoundError",
        code: "NOT_FOUND",
        message: "UserStoreDomain not found",
        resource: "UserStoreDomain",
        id: "SECONDARY",
      });
      expect(await storedUsers(username)).toEqual([]);
    });

    it.each([
      ["a number for the username", { username: 123, password: "password-1" }],
      ["a missing password", { username: "someone-x" }],
      ["an unknown role", { username: "someone-y", password: "password-1", roles: ["ROOT"] }],
      ["a list where a string belongs", { username: ["a", "b"], password: "password-1" }],
    ])("answers %s with HTTP 400 and GraphQL errors, never a 500", async (_name, input) => {
      const query = "mutation($input: CreateUserInput!) { createUser(input: $input) { __typename } }";
      const { status, body } = await postGraphQL(
        t,
        { query, variables: { input } },
        { authorization: `Bearer ${adminToken}` },
      );
      expect(status).toBe(400);
      expect(body.data).toBeUndefined();
      expect(body.errors).toEqual([expect.objectContaining({ message: expect.stringContaining("$input") })]);
    });

    it("answers an enum literal that does not exist with HTTP 400", async () => {
      const username = uniqueName("literal");
      const query = `mutation { createUser(input: { username: "${username}", password: "password-1", roles: [BOSS] }) { __typename } }`;
      const { status, body } = await postGraphQL(t, { query }, { authorization: `Bearer ${adminToken}` });
      expect(status).toBe(400);
      expect(body.errors[0].message).toMatch(/Value "BOSS" does not exist in "Role" enum/);
      expect(await storedUsers(username)).toEqual([]);
    });
  });

  describe("duplicates", () => {
    it("answers a taken username with AlreadyExistsError and keeps the first user", async () => {
      const username = uniqueName("erin");
      const first = await createUser(adminToken, { username, password: "first-password" });
      const second = await createUser(adminToken, { username, password: "second-password" });
      expect(second).toEqual({
        __typename: "AlreadyExistsError",
        code: "ALREADY_EXISTS",
        message: "User with this username already exists",
        resource: "User",
        field: "username",
      });
      const rows = await storedUsers(username);
      expect(rows.map((r) => r.id)).toEqual([first.user!.id]);
      await expect(loginAs(t, username, "first-password")).resolves.toMatch(/^tmat_/);
    });

    it("treats usernames that differ only in case as the same username", async () => {
      const username = uniqueName("frank");
      await createUser(adminToken, { username, password: "frank-password" });
      const result = await createUser(adminToken, {
        username: username.toUpperCase(),
        password: "frank-password",
      });
      expect(result).toMatchObject({ __typename: "AlreadyExistsError", resource: "User", field: "username" });
      expect(await storedUsers(username)).toHaveLength(1);
    });

    it("lets exactly one of two concurrent creations of the same username win", async () => {
      const username = uniqueName("race");
      const results = await Promise.all([
        createUser(adminToken, { username, password: "race-password-1" }),
        createUser(adminToken, { username, password: "race-password-2" }),
      ]);
      expect(results.map((r) => r.__typename).sort()).toEqual(["AlreadyExistsError", "CreateUserPayload"]);
      expect(await storedUsers(username)).toHaveLength(1);
    });
  });
});

describe("deleteUser", () => {
  /** Token ids of the user's events of one type, in order. */
  async function tokenEvents(userId: string, type: string) {
    return t.app.deps.database.raw<{ token_id: string; reason: string; actor_id: string | null }>(
      "select token_id, reason, actor_id from token_events where user_id = $1 and type = $2 order by id",
      [userId, type],
    );
  }

  it("deletes the user, returns it, and revokes each of its tokens with a USER_DELETED event", async () => {
    const username = uniqueName("gina");
    const gina = await createSubscriber(t, adminToken, username);
    await loginAs(t, username, gina.password);
    const issued = await tokenEvents(gina.id, "ISSUED");
    expect(issued).toHaveLength(2);

    const result = await deleteUser(adminToken, gina.id);
    expect(result).toEqual({ __typename: "DeleteUserPayload", user: { id: gina.id, username } });
    expect(await userExists(gina.id)).toBe(false);
    const revoked = await tokenEvents(gina.id, "REVOKED");
    expect(revoked).toEqual(
      issued.map((e) => ({ token_id: e.token_id, reason: "USER_DELETED", actor_id: adminId })),
    );
    const { me } = await t.client(gina.token).request<{ me: Outcome }>(ME);
    expect(me.__typename).toBe("UnauthenticatedError");
  });

  it("leaves other users and their tokens alone", async () => {
    const bystander = await createSubscriber(t, adminToken, uniqueName("bystander"));
    const victim = await createSubscriber(t, adminToken, uniqueName("victim"));
    expect((await deleteUser(adminToken, victim.id)).__typename).toBe("DeleteUserPayload");
    expect(await userExists(bystander.id)).toBe(true);
    expect(await tokenEvents(bystander.id, "REVOKED")).toEqual([]);
    const { me } = await t.client(bystander.token).request<{ me: Outcome }>(ME);
    expect(me).toEqual({
      __typename: "User",
      id: bystander.id,
      username: expect.stringMatching(/^bystander-/),
    });
  });

  it("removes the user's applications and their subscriptions, revoking their application tokens", async () => {
    const hank = await createSubscriber(t, adminToken, uniqueName("hank"));
    const other = await createSubscriber(t, adminToken, uniqueName("other"));
    const api = await createApiAs(t.client(adminToken), {
      name: "Weather",
      context: `/${uniqueName("weather")}`,
      version: "1.0.0",
    });
    const app = await createApplicationAs(t.client(hank.token), { name: "Hank's app" });
    const kept = await createApplicationAs(t.client(other.token), { name: "Other app" });
    const { subscribe } = await t
      .client(hank.token)
      .request<{ subscribe: Outcome }>(SUBSCRIBE, { input: { applicationId: app.id, apiId: api.id } });
    expect(subscribe.__typename).toBe("SubscribePayload");
    const appToken = await insertApplicationToken(t, app.id);

    expect((await deleteUser(adminToken, hank.id)).__typename).toBe("DeleteUserPayload");

    const raw = t.app.deps.database.raw.bind(t.app.deps.database);
    expect(await raw("select id from applications where owner_id = $1", [hank.id])).toEqual([]);
    expect(await raw("select id from subscriptions where application_id = $1", [app.id])).toEqual([]);
    expect(await raw("select id from applications where id = $1", [kept.id])).toEqual([{ id: kept.id }]);
    expect(
      await raw("select type, reason, application_id from token_events where token_id = $1 order by id", [
        appToken,
      ]),
    ).toEqual([{ type: "REVOKED", reason: "USER_DELETED", application_id: app.id }]);
  });

  it("refuses to let an admin delete its own account", async () => {
    expect(await deleteUser(adminToken, adminId)).toEqual({
      __typename: "ForbiddenError",
      code: "FORBIDDEN",
      message: "admins cannot delete their own account",
    });
    expect(await userExists(adminId)).toBe(true);
    const { me } = await t.client(adminToken).request<{ me: Outcome }>(ME);
    expect(me.__typename).toBe("User");
  });

  describe("authorization", () => {
    it("answers a call without a token with UnauthenticatedError and deletes nothing", async () => {
      const target = await createSubscriber(t, adminToken, uniqueName("target"));
      expect(await deleteUser(undefined, target.id)).toEqual(NO_TOKEN);
      expect(await userExists(target.id)).toBe(true);
    });

    it("answers a bad token with UnauthenticatedError and deletes nothing", async () => {
      const target = await createSubscriber(t, adminToken, uniqueName("target"));
      expect(await deleteUser(`tmat_${"0".repeat(32)}_${"0".repeat(72)}`, target.id)).toEqual(BAD_TOKEN);
      expect(await userExists(target.id)).toBe(true);
    });

    it("answers a subscriber with ForbiddenError, even for its own account, and deletes nothing", async () => {
      const subscriber = await createSubscriber(t, adminToken, uniqueName("sub"));
      const target = await createSubscriber(t, adminToken, uniqueName("target"));
      expect(await deleteUser(subscriber.token, target.id)).toEqual(FORBIDDEN);
      expect(await deleteUser(subscriber.token, subscriber.id)).toEqual(FORBIDDEN);
      expect(await userExists(target.id)).toBe(true);
      expect(await userExists(subscriber.id)).toBe(true);
    });
  });

  describe("bad input", () => {
    it.each([
      ["a valid UUID that names no user", UNKNOWN_ID],
      ["a string that is not a UUID", "not-a-uuid"],
      ["an empty string", ""],
    ])("answers %s with NotFoundError", async (_name, id) => {
      expect(await deleteUser(adminToken, id)).toEqual({
        __typename: "NotFoundError",
        code: "NOT_FOUND",
        message: "User not found",
        resource: "User",
        id,
      });
    });

    it("answers a second deletion of the same user with NotFoundError", async () => {
      const ivan = await createSubscriber(t, adminToken, uniqueName("ivan"));
      expect((await deleteUser(adminToken, ivan.id)).__typename).toBe("DeleteUserPayload");
      expect(await deleteUser(adminToken, ivan.id)).toMatchObject({
        __typename: "NotFoundError",
        id: ivan.id,
      });
    });

    it.each([
      ["a boolean id", { input: { id: true } }],
      ["a missing id", { input: {} }],
      ["a null input", { input: null }],
    ])("answers %s with HTTP 400 and GraphQL errors, never a 500", async (_name, variables) => {
      const query = "mutation($input: DeleteUserInput!) { deleteUser(input: $input) { __typename } }";
      const { status, body } = await postGraphQL(
        t,
        { query, variables },
        { authorization: `Bearer ${adminToken}` },
      );
      expect(status).toBe(400);
      expect(body.data).toBeUndefined();
      expect(body.errors).toEqual([expect.objectContaining({ message: expect.stringContaining("$input") })]);
    });
  });
});
