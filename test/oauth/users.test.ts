import { gql } from "graphql-request";
import { describe, expect, it } from "vitest";
import { ERROR_FIELDS } from "../support/graphql.js";
import {
  clientCredentials,
  clientCredentialsRequest,
  eventsOfTokens,
  familyOf,
  INVALID_CLIENT_BASIC,
  idOf,
  introspect,
  introspectionRequest,
  newClient,
  newUser,
  type Owner,
  oauthError,
  passwordGrant,
  passwordRequest,
  refreshRequest,
  useOAuthWorld,
  wire,
} from "../support/oauth.js";

const UPDATE_USER = gql`
  mutation UpdateUser($input: UpdateUserInput!) {
    updateUser(input: $input) { __typename ${ERROR_FIELDS} }
  }
`;
const CHANGE_PASSWORD = gql`
  mutation ChangePassword($input: ChangePasswordInput!) {
    changePassword(input: $input) { __typename ${ERROR_FIELDS} }
  }
`;
const REVOKE_TOKEN_BY_ID = gql`
  mutation RevokeTokenById($input: RevokeTokenByIdInput!) {
    revokeTokenById(input: $input) { __typename ${ERROR_FIELDS} }
  }
`;
const DELETE_USER = gql`
  mutation DeleteUser($id: ID!) {
    deleteUser(input: { id: $id }) { __typename ${ERROR_FIELDS} }
  }
`;

const INVALID_REFRESH = oauthError(400, "invalid_grant", "the refresh token is invalid, expired or revoked");
const BAD_CREDENTIALS = oauthError(400, "invalid_grant", "invalid username or password");

const f = useOAuthWorld();

const mutate = async (token: string, document: string, variables: Record<string, unknown>) =>
  Object.values(
    await f.t.client(token).request<Record<string, { __typename: string }>>(document, variables),
  )[0]!;

/** A user holding a token pair issued to `c` through the password grant. */
async function userWithTokens(): Promise<{ user: Owner; access: string; refresh: string }> {
  const user = await newUser(f.t, f.world.adminToken);
  const { access_token, refresh_token } = await passwordGrant(f.world, f.c, {}, user);
  expect(await introspect(f.world, f.c, access_token)).toMatchObject({ active: true });
  return { user, access: access_token, refresh: refresh_token! };
}

/** Both tokens inactive, the family revoked for `reason`, and the access token's REVOKED event. */
async function expectRevoked(tokens: { access: string; refresh: string }, reason: string) {
  expect(await introspect(f.world, f.c, tokens.access)).toEqual({ active: false });
  expect(await introspect(f.world, f.c, tokens.refresh)).toEqual({ active: false });
  expect(await wire(await refreshRequest(f.world, f.c, tokens.refresh))).toEqual(INVALID_REFRESH);
  expect(await eventsOfTokens(f.t, [idOf(tokens.access)])).toEqual([
    { type: "ISSUED", reason: "CLIENT_REQUEST", token_id: idOf(tokens.access) },
    { type: "REVOKED", reason, token_id: idOf(tokens.access) },
  ]);
}

describe("user changes reach OAuth tokens", () => {
  it("disabling a user makes its tokens inactive (USER_DISABLED) and refuses the password grant", async () => {
    const tokens = await userWithTokens();
    const outcome = await mutate(f.world.adminToken, UPDATE_USER, {
      input: { id: tokens.user.id, disabled: true },
    });
    expect(outcome).toEqual({ __typename: "UpdateUserPayload" });
    await expectRevoked(tokens, "USER_DISABLED");
    expect(await familyOf(f.t, tokens.refresh)).toMatchObject({
      revoked: true,
      revoke_reason: "USER_DISABLED",
    });
    const again = await passwordRequest(f.world, f.c, {
      username: tokens.user.username,
      password: tokens.user.password,
    });
    expect(await wire(again)).toEqual(BAD_CREDENTIALS);

    // Enabled again, the user logs in anew; the revoked tokens stay revoked.
    await mutate(f.world.adminToken, UPDATE_USER, { input: { id: tokens.user.id, disabled: false } });
    await expect(passwordGrant(f.world, f.c, {}, tokens.user)).resolves.toMatchObject({
      token_type: "bearer",
    });
    expect(await introspect(f.world, f.c, tokens.access)).toEqual({ active: false });
  });

  it("disabling an application owner revokes its applications' tokens and stops its clients", async () => {
    const owner = await newUser(f.t, f.world.adminToken);
    const ownClient = await newClient(f.world, { owner });
    const { access_token } = await clientCredentials(f.world, ownClient);
    const userTokens = await passwordGrant(f.world, ownClient, {}, f.world.owner);
    await mutate(f.world.adminToken, UPDATE_USER, { input: { id: owner.id, disabled: true } });

    expect(await introspect(f.world, f.c, access_token)).toEqual({ active: false });
    expect(await introspect(f.world, f.c, userTokens.access_token)).toEqual({ active: false });
    expect(await eventsOfTokens(f.t, [idOf(access_token)])).toEqual([
      { type: "ISSUED", reason: "CLIENT_REQUEST", token_id: idOf(access_token) },
      { type: "REVOKED", reason: "USER_DISABLED", token_id: idOf(access_token) },
    ]);
    // A disabled owner's client cannot mint new tokens: revocation would otherwise be undone at once.
    expect(await wire(await clientCredentialsRequest(f.world, ownClient))).toEqual(INVALID_CLIENT_BASIC);
    expect(await wire(await refreshRequest(f.world, ownClient, userTokens.refresh_token!))).toEqual(
      INVALID_CLIENT_BASIC,
    );

    await mutate(f.world.adminToken, UPDATE_USER, { input: { id: owner.id, disabled: false } });
    expect((await clientCredentialsRequest(f.world, ownClient)).status).toBe(200);
  });

  // Its applications hold no token, so no token event says so: disabling announces the owner itself.
  it("a disabled owner's client is refused at once even when its applications held no active token", async () => {
    const owner = await newUser(f.t, f.world.adminToken);
    const ownClient = await newClient(f.world, { owner });
    // Its only token (from generateKeys) revoked by the owner: nothing left for the disable to revoke.
    const [{ id } = { id: "" }] = await f.t.app.deps.database.raw<{ id: string }>(
      "select id from access_tokens where application_id = $1",
      [ownClient.applicationId],
    );
    expect(await mutate(owner.token, REVOKE_TOKEN_BY_ID, { input: { id } })).toEqual({
      __typename: "RevokeTokenByIdPayload",
    });
    // The client authenticates once (no token issued), so its record is cached.
    expect((await introspectionRequest(f.world, ownClient, "x")).status).toBe(200);
    await mutate(f.world.adminToken, UPDATE_USER, { input: { id: owner.id, disabled: true } });
    expect(await wire(await clientCredentialsRequest(f.world, ownClient))).toEqual(INVALID_CLIENT_BASIC);
  });

  it("an admin setting a new password makes the user's tokens inactive (PASSWORD_CHANGED)", async () => {
    const tokens = await userWithTokens();
    const outcome = await mutate(f.world.adminToken, UPDATE_USER, {
      input: { id: tokens.user.id, password: "a-brand-new-password" },
    });
    expect(outcome).toEqual({ __typename: "UpdateUserPayload" });
    await expectRevoked(tokens, "PASSWORD_CHANGED");
    const old = await passwordRequest(f.world, f.c, {
      username: tokens.user.username,
      password: tokens.user.password,
    });
    expect(await wire(old)).toEqual(BAD_CREDENTIALS);
    await expect(
      passwordGrant(f.world, f.c, {}, { username: tokens.user.username, password: "a-brand-new-password" }),
    ).resolves.toMatchObject({ token_type: "bearer" });
  });

  it("a user changing its own password makes its tokens inactive (PASSWORD_CHANGED)", async () => {
    const tokens = await userWithTokens();
    const outcome = await mutate(tokens.user.token, CHANGE_PASSWORD, {
      input: { currentPassword: tokens.user.password, newPassword: "my-own-new-password" },
    });
    expect(outcome).toEqual({ __typename: "ChangePasswordPayload" });
    await expectRevoked(tokens, "PASSWORD_CHANGED");
    await expect(
      passwordGrant(f.world, f.c, {}, { username: tokens.user.username, password: "my-own-new-password" }),
    ).resolves.toMatchObject({ token_type: "bearer" });
  });

  it("deleting a user makes its tokens inactive (USER_DELETED)", async () => {
    const tokens = await userWithTokens();
    const outcome = await mutate(f.world.adminToken, DELETE_USER, { id: tokens.user.id });
    expect(outcome).toEqual({ __typename: "DeleteUserPayload" });
    await expectRevoked(tokens, "USER_DELETED");
    const again = await passwordRequest(f.world, f.c, {
      username: tokens.user.username,
      password: tokens.user.password,
    });
    expect(await wire(again)).toEqual(BAD_CREDENTIALS);
  });
});
