import { gql } from "graphql-request";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, statementSent, type TestApp, USER_BY_NAME } from "../support/app.js";
import { CREATE_USER, createSubscriber, LOGIN, loginAdmin } from "../support/graphql.js";

const ME = gql`{ me { __typename ... on User { username } ... on Error { code } } }`;
const UPDATE_USER = gql`
  mutation($input: UpdateUserInput!) {
    updateUser(input: $input) {
      __typename
      ... on UpdateUserPayload { user { username disabled roles } }
      ... on Error { code message }
    }
  }
`;
const CHANGE_PASSWORD = gql`
  mutation($input: ChangePasswordInput!) {
    changePassword(input: $input) { __typename ... on Error { code message } }
  }
`;
const CREATE_DOMAIN = gql`
  mutation($name: String!) {
    createUserStoreDomain(input: { name: $name }) {
      __typename
      ... on CreateUserStoreDomainPayload { domain { name partition } }
      ... on ValidationError { field }
      ... on BusyError { retryAfter }
      ... on Error { code message }
    }
  }
`;

let t: TestApp;
let admin: string;
beforeAll(async () => {
  t = await startTestApp();
  admin = await loginAdmin(t);
});
afterAll(() => t.stop());

/** The events written for a user's tokens, oldest first. */
const revocationReasons = async (userId: string) =>
  (
    await t.app.deps.database.raw<{ reason: string }>(
      "select reason from token_events where user_id = $1 and type = 'REVOKED' order by id",
      [userId],
    )
  ).map((r) => r.reason);

describe("disabling a user", () => {
  it("revokes every token it holds, with USER_DISABLED events, and blocks login until enabled", async () => {
    const frank = await createSubscriber(t, admin, "frank");
    const { updateUser } = await t
      .client(admin)
      .request<any>(UPDATE_USER, { input: { id: frank.id, disabled: true } });
    expect(updateUser).toEqual({
      __typename: "UpdateUserPayload",
      user: { username: "frank", disabled: true, roles: ["SUBSCRIBER"] },
    });
    expect((await t.client(frank.token).request<any>(ME)).me).toEqual({
      __typename: "UnauthenticatedError",
      code: "UNAUTHENTICATED",
    });
    expect(await revocationReasons(frank.id)).toEqual(["USER_DISABLED"]);
    const refused = await t
      .client()
      .request<any>(LOGIN, { input: { username: "frank", password: frank.password } });
    expect(refused.login.__typename).toBe("InvalidCredentialsError");

    await t.client(admin).request<any>(UPDATE_USER, { input: { id: frank.id, disabled: false } });
    const again = await t
      .client()
      .request<any>(LOGIN, { input: { username: "frank", password: frank.password } });
    expect(again.login.__typename).toBe("LoginPayload");
  });

  it("is refused for the caller's own account and for non-admins", async () => {
    const { me } = await t.client(admin).request<any>(gql`{ me { ... on User { id } } }`);
    const self = await t.client(admin).request<any>(UPDATE_USER, { input: { id: me.id, disabled: true } });
    expect(self.updateUser).toMatchObject({ __typename: "ForbiddenError", code: "FORBIDDEN" });
    const gina = await createSubscriber(t, admin, "gina");
    const other = await t
      .client(gina.token)
      .request<any>(UPDATE_USER, { input: { id: gina.id, disabled: true } });
    expect(other.updateUser).toMatchObject({ __typename: "ForbiddenError" });
  });
});

describe("password changes", () => {
  it("revoke the user's tokens (PASSWORD_CHANGED) when an admin sets a new password", async () => {
    const hank = await createSubscriber(t, admin, "hank");
    await t
      .client(admin)
      .request<any>(UPDATE_USER, { input: { id: hank.id, password: "a-brand-new-password" } });
    expect((await t.client(hank.token).request<any>(ME)).me.__typename).toBe("UnauthenticatedError");
    expect(await revocationReasons(hank.id)).toEqual(["PASSWORD_CHANGED"]);
    const login = await t
      .client()
      .request<any>(LOGIN, { input: { username: "hank", password: "a-brand-new-password" } });
    expect(login.login.__typename).toBe("LoginPayload");
  });

  it("require the current password when users change their own, then revoke their tokens", async () => {
    const ivy = await createSubscriber(t, admin, "ivy");
    const wrong = await t.client(ivy.token).request<any>(CHANGE_PASSWORD, {
      input: { currentPassword: "not-it", newPassword: "ivys-new-password" },
    });
    expect(wrong.changePassword).toMatchObject({
      __typename: "InvalidCredentialsError",
      code: "INVALID_CREDENTIALS",
    });
    const short = await t
      .client(ivy.token)
      .request<any>(CHANGE_PASSWORD, { input: { currentPassword: ivy.password, newPassword: "short" } });
    expect(short.changePassword).toMatchObject({ __typename: "ValidationError", code: "VALIDATION_FAILED" });
    const ok = await t.client(ivy.token).request<any>(CHANGE_PASSWORD, {
      input: { currentPassword: ivy.password, newPassword: "ivys-new-password" },
    });
    expect(ok.changePassword.__typename).toBe("ChangePasswordPayload");
    expect((await t.client(ivy.token).request<any>(ME)).me.__typename).toBe("UnauthenticatedError");
  });
});

describe("user store domains", () => {
  it("creates a domain with its own partition, where its users' tokens are stored", async () => {
    const { createUserStoreDomain } = await t.client(admin).request<any>(CREATE_DOMAIN, { name: "PARTNERS" });
    expect(createUserStoreDomain).toEqual({
      __typename: "CreateUserStoreDomainPayload",
      domain: { name: "PARTNERS", partition: "access_tokens_partners" },
    });
    const { createUser } = await t.client(admin).request<any>(CREATE_USER, {
      input: { username: "partner-joe", password: "partner-joe-password", userStoreDomain: "PARTNERS" },
    });
    expect(createUser.user.userStoreDomain).toBe("PARTNERS");
    const { login } = await t.client().request<any>(LOGIN, {
      input: { username: "partner-joe", password: "partner-joe-password" },
    });
    const [row] = await t.app.deps.database.raw<{ partition: string }>(
      "select tableoid::regclass::text as partition from access_tokens where id = $1",
      [
        `${login.accessToken.slice(5, 13)}-${login.accessToken.slice(13, 17)}-${login.accessToken.slice(17, 21)}-${login.accessToken.slice(21, 25)}-${login.accessToken.slice(25, 37)}`,
      ],
    );
    expect(row?.partition).toBe("access_tokens_partners");
    expect((await t.client(login.accessToken).request<any>(ME)).me.username).toBe("partner-joe");
  });

  it("rejects a duplicate, a malformed name and non-admins", async () => {
    await t.client(admin).request<any>(CREATE_DOMAIN, { name: "DUPLICATE" });
    const again = await t.client(admin).request<any>(CREATE_DOMAIN, { name: "DUPLICATE" });
    expect(again.createUserStoreDomain).toMatchObject({
      __typename: "AlreadyExistsError",
      code: "ALREADY_EXISTS",
    });
    // A new name whose partition would clash with a relation of the service (the default
    // partition, an index) is refused as such, not as a duplicate, and leaves no domain behind.
    for (const name of ["DEFAULT", "PRIMARY_PKEY", "EXPIRES_AT_IDX"]) {
      const reserved = await t.client(admin).request<any>(CREATE_DOMAIN, { name });
      expect(reserved.createUserStoreDomain, name).toEqual({
        __typename: "ValidationError",
        field: "name",
        code: "VALIDATION_FAILED",
        message: `name is reserved: the partition it needs (access_tokens_${name.toLowerCase()}) would clash with a table or index of the service`,
      });
    }
    const domains = await t.app.deps.database.raw<{ name: string }>("select name from user_store_domains");
    expect(domains.map((d) => d.name)).not.toContain("DEFAULT");
    const bad = await t.client(admin).request<any>(CREATE_DOMAIN, { name: "bad name; drop table users" });
    expect(bad.createUserStoreDomain).toMatchObject({ __typename: "ValidationError", field: "name" });
    const kim = await createSubscriber(t, admin, "kim");
    const denied = await t.client(kim.token).request<any>(CREATE_DOMAIN, { name: "MINE" });
    expect(denied.createUserStoreDomain).toMatchObject({ __typename: "ForbiddenError" });
  });

  it.runIf(process.env.DATABASE_URL !== undefined)(
    "give way to a long transaction on the token table (PostgreSQL): BusyError, nothing added, and tokens keep being issued meanwhile",
    async () => {
      const mia = await createSubscriber(t, admin, "mia");
      // Another session reads access_tokens and keeps its transaction open (a report, a slow export).
      const other = postgres(t.databaseUrl as string, { max: 1, onnotice: () => {} });
      const session = await other.reserve();
      try {
        await session`begin`;
        await session`select count(*) from access_tokens`;
        const adding = t.client(admin).request<any>(CREATE_DOMAIN, { name: "BLOCKED" });
        await new Promise((resolve) => setTimeout(resolve, 100));
        // The DDL is queued for its lock now; a login (a token insert) behind it still completes
        // while the other transaction is open: the DDL gave way instead of holding it up.
        const { login } = await t.client().request<any>(LOGIN, {
          input: { username: "mia", password: mia.password },
        });
        expect(login.__typename).toBe("LoginPayload");
        expect((await adding).createUserStoreDomain).toEqual({
          __typename: "BusyError",
          retryAfter: 5,
          code: "BUSY",
          message: "the token table is busy with other work: no domain was added, retry shortly",
        });
        const [row] = await t.app.deps.database.raw<{ domains: number; partition: string | null }>(
          "select (select count(*)::int from user_store_domains where name = 'BLOCKED') as domains, to_regclass('access_tokens_blocked')::text as partition",
        );
        expect(row).toEqual({ domains: 0, partition: null });
      } finally {
        await session`rollback`;
        session.release();
        await other.end();
      }
      // Once the other work is over, the same name is added.
      const added = await t.client(admin).request<any>(CREATE_DOMAIN, { name: "BLOCKED" });
      expect(added.createUserStoreDomain).toEqual({
        __typename: "CreateUserStoreDomainPayload",
        domain: { name: "BLOCKED", partition: "access_tokens_blocked" },
      });
    },
  );
});

describe("a login in flight", () => {
  /**
   * Starts a login and resolves once its password check has read the user (the statement is
   * sent; the scrypt that follows takes tens of milliseconds), so that what the test does next
   * lands between the check and the issue of the tokens.
   */
  async function loginPastItsRead(username: string, password: string) {
    t.resetStatements();
    const login = t.client().request<any>(LOGIN, { input: { username, password } });
    await statementSent(t, USER_BY_NAME);
    // Wrapped: an async function returning the promise itself would wait for it.
    return { login };
  }
  const tokensOf = async (userId: string) =>
    (
      await t.app.deps.database.raw<{ n: number }>(
        "select count(*)::int as n from access_tokens where user_id = $1 and revoked_at is null",
        [userId],
      )
    )[0]?.n;

  it("is refused when the password changed after its check: no session outlives the reset", async () => {
    const nina = await createSubscriber(t, admin, "nina");
    await t.app.deps.database.raw("update access_tokens set revoked_at = now() where user_id = $1", [
      nina.id,
    ]);
    const { login } = await loginPastItsRead("nina", nina.password);
    // The reset's write (its hash made beforehand), committed while the login runs its scrypt.
    await t.app.deps.database.raw(
      "update users set password_hash = 'scrypt$32768$8$1$c2FsdA$aGFzaA', password_changed_at = now() where id = $1",
      [nina.id],
    );
    expect((await login).login).toEqual({
      __typename: "InvalidCredentialsError",
      code: "INVALID_CREDENTIALS",
      message: "invalid username or password",
    });
    expect(await tokensOf(nina.id)).toBe(0);
  });

  it("is refused, not a server error, when the user was deleted after its check", async () => {
    const omar = await createSubscriber(t, admin, "omar");
    const { login } = await loginPastItsRead("omar", omar.password);
    await t.app.deps.database.raw("delete from users where id = $1", [omar.id]);
    expect((await login).login).toEqual({
      __typename: "InvalidCredentialsError",
      code: "INVALID_CREDENTIALS",
      message: "invalid username or password",
    });
  });
});

describe("role changes", () => {
  it("end the user's sessions, so new roles apply from the next login", async () => {
    const lena = await createSubscriber(t, admin, "lena");
    const { updateUser } = await t
      .client(admin)
      .request<any>(UPDATE_USER, { input: { id: lena.id, roles: ["ADMIN", "SUBSCRIBER"] } });
    expect(updateUser.user.roles.sort()).toEqual(["ADMIN", "SUBSCRIBER"]);
    expect((await t.client(lena.token).request<any>(ME)).me.__typename).toBe("UnauthenticatedError");
    expect(await revocationReasons(lena.id)).toEqual(["ADMIN"]);
    // The same roles again change nothing and revoke nothing.
    const relogin = await t
      .client()
      .request<any>(LOGIN, { input: { username: "lena", password: lena.password } });
    await t
      .client(admin)
      .request<any>(UPDATE_USER, { input: { id: lena.id, roles: ["SUBSCRIBER", "ADMIN"] } });
    expect((await t.client(relogin.login.accessToken).request<any>(ME)).me.username).toBe("lena");
  });
});
