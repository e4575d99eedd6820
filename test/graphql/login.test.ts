import { gql } from "graphql-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, startTestApp, type TestApp } from "../support/app.js";
import { createSubscriber, LOGIN, loginAdmin, postGraphQL } from "../support/graphql.js";

const ME = gql`
  query Me {
    me {
      __typename
      ... on User { id username roles userStoreDomain }
      ... on Error { code message }
    }
  }
`;

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.stop());

describe("login", () => {
  it("issues a prefixed access token and refresh token for the console client", async () => {
    const { login } = await t.client().request<any>(LOGIN, { input: ADMIN });
    expect(login.__typename).toBe("LoginPayload");
    expect(login.accessToken).toMatch(/^tmat_[0-9a-f]{32}_[0-9a-f]{72}$/);
    expect(login.refreshToken).toMatch(/^tmrt_[0-9a-f]{32}_[0-9a-f]{72}$/);
    expect(login.tokenType).toBe("Bearer");
    expect(login.expiresIn).toBe(3600);
    expect(login.user).toMatchObject({ username: "admin", roles: ["ADMIN"] });
  });

  it("rejects a wrong password and an unknown user with the same typed error", async () => {
    const wrong = await t
      .client()
      .request<any>(LOGIN, { input: { username: "admin", password: "nope-nope" } });
    const unknown = await t
      .client()
      .request<any>(LOGIN, { input: { username: "ghost", password: "nope-nope" } });
    const expected = {
      __typename: "InvalidCredentialsError",
      code: "INVALID_CREDENTIALS",
      message: "invalid username or password",
    };
    expect(wrong.login).toEqual(expected);
    expect(unknown.login).toEqual(expected);
  });

  it("rejects empty and oversized credentials as a validation error", async () => {
    const empty = await t.client().request<any>(LOGIN, { input: { username: "", password: "x" } });
    expect(empty.login).toMatchObject({ __typename: "ValidationError", code: "VALIDATION_FAILED" });
    const huge = await t
      .client()
      .request<any>(LOGIN, { input: { username: "admin", password: "x".repeat(300) } });
    expect(huge.login).toMatchObject({ __typename: "ValidationError", code: "VALIDATION_FAILED" });
  });

  it("matches usernames case-insensitively", async () => {
    const { login } = await t.client().request<any>(LOGIN, { input: { ...ADMIN, username: "ADMIN" } });
    expect(login.__typename).toBe("LoginPayload");
  });
});

describe("authentication of GraphQL calls", () => {
  it("identifies the caller from Authorization: Bearer", async () => {
    const token = await loginAdmin(t);
    const { me } = await t.client(token).request<any>(ME);
    expect(me).toMatchObject({
      __typename: "User",
      username: "admin",
      roles: ["ADMIN"],
      userStoreDomain: "PRIMARY",
    });
  });

  it("answers a missing token with UnauthenticatedError", async () => {
    const { me } = await t.client().request<any>(ME);
    expect(me).toEqual({
      __typename: "UnauthenticatedError",
      code: "UNAUTHENTICATED",
      message: "authentication required: send Authorization: Bearer <access token>",
    });
  });

  it.each([
    ["a malformed token", "Bearer not-a-token"],
    ["a token with a broken checksum", `Bearer tmat_${"0".repeat(32)}_${"0".repeat(72)}`],
    ["another scheme", "Basic YWRtaW46YWRtaW4="],
  ])("answers %s with UnauthenticatedError", async (_name, authorization) => {
    const { status, body } = await postGraphQL(
      t,
      { query: "{ me { __typename ... on Error { code } } }" },
      { authorization },
    );
    expect(status).toBe(200);
    expect(body).toEqual({ data: { me: { __typename: "UnauthenticatedError", code: "UNAUTHENTICATED" } } });
  });

  it("rejects a well-formed token whose secret is wrong", async () => {
    const token = await loginAdmin(t);
    // Same id and a valid checksum over a different secret: found by id, refused by the hash.
    const { createHash } = await import("node:crypto");
    const [prefix, id] = token.split("_");
    const body = `${prefix}_${id}_${createHash("sha256").update("other").digest("hex")}`;
    const { crc32 } = await import("node:zlib");
    const forged = body + crc32(body).toString(16).padStart(8, "0");
    const { me } = await t.client(forged).request<any>(ME);
    expect(me.__typename).toBe("UnauthenticatedError");
  });

  it("stops accepting a deleted user's token", async () => {
    const adminToken = await loginAdmin(t);
    const carol = await createSubscriber(t, adminToken, "carol");
    expect((await t.client(carol.token).request<any>(ME)).me.username).toBe("carol");
    const { deleteUser } = await t
      .client(adminToken)
      .request<any>(gql`mutation($id: ID!) { deleteUser(input: { id: $id }) { __typename } }`, {
        id: carol.id,
      });
    expect(deleteUser.__typename).toBe("DeleteUserPayload");
    const { me } = await t.client(carol.token).request<any>(ME);
    expect(me).toMatchObject({
      __typename: "UnauthenticatedError",
      message: "the access token is invalid, expired or revoked",
    });
  });
});
