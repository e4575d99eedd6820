import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN, startTestApp, type TestApp } from "../support/app.js";
import { CREATE_USER, LOGIN, loginAdmin } from "../support/graphql.js";

let t: TestApp;
const secrets: string[] = [];
const SUBSCRIBER_PASSWORD = "s3cret-subscriber-passw0rd";

/** Every row of every table, as text. */
async function dumpDatabase(): Promise<string> {
  const tables = await t.app.deps.database.raw<{ name: string }>(
    "select table_name as name from information_schema.tables where table_schema = 'public'",
  );
  expect(tables.map((r) => r.name)).toEqual(
    expect.arrayContaining(["access_tokens", "users", "refresh_tokens"]),
  );
  const parts: string[] = [];
  for (const { name } of tables) {
    const rows = await t.app.deps.database.raw(`select * from "${name}"`);
    parts.push(JSON.stringify(rows));
  }
  return parts.join("\n");
}

beforeAll(async () => {
  t = await startTestApp({ env: { LOG_LEVEL: "trace" } });
  const adminToken = await loginAdmin(t);
  const { createUser } = await t
    .client(adminToken)
    .request<any>(CREATE_USER, { input: { username: "dana", password: SUBSCRIBER_PASSWORD } });
  expect(createUser.__typename).toBe("CreateUserPayload");
  const { login } = await t
    .client()
    .request<any>(LOGIN, { input: { username: "dana", password: SUBSCRIBER_PASSWORD } });
  // A failed login and a GET whose query string carries a password: neither may reach the logs.
  await t.client().request<any>(LOGIN, { input: { username: "dana", password: "wrong-but-secret-guess" } });
  const query = encodeURIComponent(
    'mutation { login(input: {username: "dana", password: "in-the-url-secret"}) { __typename } }',
  );
  await fetch(`${t.graphqlUrl}?query=${query}`, { headers: { "x-graphql-yoga-csrf": "1" } });
  secrets.push(
    adminToken,
    login.accessToken,
    login.refreshToken,
    SUBSCRIBER_PASSWORD,
    ADMIN.password,
    "wrong-but-secret-guess",
    "in-the-url-secret",
  );
  // The random part of each token on its own, too.
  for (const token of [adminToken, login.accessToken, login.refreshToken]) secrets.push(token.split("_")[2]!);
});
afterAll(() => t.stop());

describe("no credential in plain form", () => {
  it("keeps no token, secret or password in the database", async () => {
    const dump = await dumpDatabase();
    expect(dump).toContain("dana"); // the dump does hold the data
    for (const secret of secrets) expect(dump).not.toContain(secret);
  });

  it("stores passwords with a slow hash and tokens as keyed hashes", async () => {
    const [user] = await t.app.deps.database.raw<{ password_hash: string }>(
      "select password_hash from users where username = 'dana'",
    );
    expect(user?.password_hash).toMatch(/^scrypt\$32768\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    const tokens = await t.app.deps.database.raw<{ token_hash: string }>(
      "select token_hash from access_tokens",
    );
    expect(tokens.length).toBeGreaterThanOrEqual(2);
    for (const row of tokens) expect(row.token_hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("writes no token, secret or password to the logs", () => {
    const logs = t.logs.join("");
    expect(logs).toContain("incoming request"); // request logging is on
    for (const secret of secrets) expect(logs).not.toContain(secret);
    expect(logs).not.toContain("Bearer ");
  });
});
