import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashTokenValue } from "../../src/domain/token-value.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { ME, run } from "../support/keys.js";
import { type Material, type Restarted, restartedWith, stopRestarted } from "../support/material.js";

const H1 = randomBytes(32).toString("hex");
const H2 = randomBytes(32).toString("hex");

/** The keyed hash of `value` under one key given as hex. */
const hashUnder = (hex: string, value: string) =>
  hashTokenValue({ current: Buffer.from(hex, "hex"), previous: [] }, value);

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`;

async function tokenEndpoint(t: TestApp, path: string, m: Material, form: Record<string, string>) {
  const response = await fetch(`${t.url}${path}`, {
    method: "POST",
    headers: {
      authorization: basic(m.opaque.consumerKey!, m.rotatedSecret),
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams(form),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const introspect = (t: TestApp, m: Material, token: string) => tokenEndpoint(t, "/introspect", m, { token });
const clientCredentials = (t: TestApp, m: Material) =>
  tokenEndpoint(t, "/token", m, { grant_type: "client_credentials" });

const storedHash = async (t: TestApp, table: "access_tokens" | "consumer_secrets", id: string) =>
  (
    await t.app.deps.database.raw<{ hash: string }>(
      `select ${table === "access_tokens" ? "token_hash" : "secret_hash"} as hash from ${table} where id = $1`,
      [id],
    )
  )[0]?.hash;

/** The id of a consumer secret or token value (`<prefix>_<32 hex>_…`), as a UUID. */
const idOf = (value: string) =>
  (value.split("_")[1] as string).replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, "$1-$2-$3-$4-$5");

/** Restarts `state`'s app on the same data under `env`; `state` then holds the new app. */
async function restart(state: { current: Restarted }, env: Record<string, string>): Promise<TestApp> {
  const { after, m } = state.current;
  await after.stop({ keepData: true });
  const next = await startTestApp({ dataDir: after.dataDir, databaseUrl: after.databaseUrl, env });
  state.current = { after: next, m };
  return next;
}

/** The statements that wrote a consumer secret since the last reset. */
const secretWrites = (t: TestApp) => t.statements.filter((s) => /^update "consumer_secrets"/i.test(s));

describe("rotating TOKEN_HASH_KEY: the new key added, then first, then the old one removed", () => {
  const state = {} as { current: Restarted };
  let issuedUnderH2 = "";
  beforeAll(async () => {
    state.current = await restartedWith({ TOKEN_HASH_KEY: H1 }, { TOKEN_HASH_KEY: `${H2},${H1}` });
  });
  afterAll(() => stopRestarted(state.current));

  it("keeps every credential hashed under the old key working", async () => {
    const { after, m } = state.current;
    expect(await storedHash(after, "access_tokens", m.opaque.token.token.id)).toBe(
      hashUnder(H1, m.opaque.token.accessToken),
    );
    // A console session, a consumer secret and an application token issued before the restart.
    expect(await run(after, m.owner.token, ME)).toMatchObject({ __typename: "User", id: m.owner.id });
    expect(await introspect(after, m, m.opaque.token.accessToken)).toEqual({
      status: 200,
      body: expect.objectContaining({ active: true, jti: m.opaque.token.token.id }),
    });
    const { refreshUserToken } = await after
      .client()
      .request<any>(
        `mutation($input: RefreshUserTokenInput!) { refreshUserToken(input: $input) { __typename ... on LoginPayload { accessToken } } }`,
        { input: { refreshToken: m.login.refreshToken } },
      );
    expect(refreshUserToken.__typename).toBe("LoginPayload");
  });

  it("hashes what it issues under the new key, and leaves consumer secrets as they are", async () => {
    const { after, m } = state.current;
    const issued = await clientCredentials(after, m);
    expect(issued.status).toBe(200);
    issuedUnderH2 = issued.body.access_token as string;
    expect(await storedHash(after, "access_tokens", idOf(issuedUnderH2))).toBe(hashUnder(H2, issuedUnderH2));
    expect(await storedHash(after, "consumer_secrets", idOf(m.rotatedSecret))).toBe(
      hashUnder(H1, m.rotatedSecret),
    );
  });

  it("an instance still listing the old key first verifies what the new key hashed, and hashes nothing back", async () => {
    const t = await restart(state, { TOKEN_HASH_KEY: `${H1},${H2}` });
    const { m } = state.current;
    expect(await introspect(t, m, issuedUnderH2)).toMatchObject({ status: 200, body: { active: true } });
    const issued = await clientCredentials(t, m);
    expect(issued.status).toBe(200);
    const value = issued.body.access_token as string;
    expect(await storedHash(t, "access_tokens", idOf(value))).toBe(hashUnder(H1, value));
  });

  it("with TOKEN_HASH_REHASH, hashes a consumer secret again under the new key at its use, once", async () => {
    const t = await restart(state, { TOKEN_HASH_KEY: `${H2},${H1}`, TOKEN_HASH_REHASH: "true" });
    const { m } = state.current;
    t.resetStatements();
    for (let i = 0; i < 3; i++) expect((await clientCredentials(t, m)).status).toBe(200);
    expect(await storedHash(t, "consumer_secrets", idOf(m.rotatedSecret))).toBe(
      hashUnder(H2, m.rotatedSecret),
    );
    // Written once (with its last use): the cached client holds the new hash from then on.
    expect(secretWrites(t)).toHaveLength(1);
  });

  it("once the old key leaves the list: the secret hashed again still works, what only the old key hashed does not", async () => {
    const t = await restart(state, { TOKEN_HASH_KEY: H2 });
    const { m } = state.current;
    const issued = await clientCredentials(t, m);
    expect(issued.status).toBe(200);
    expect(await introspect(t, m, issued.body.access_token as string)).toMatchObject({
      status: 200,
      body: { active: true },
    });
    expect(await introspect(t, m, issuedUnderH2)).toMatchObject({ status: 200, body: { active: true } });
    expect(await introspect(t, m, m.opaque.token.accessToken)).toEqual({
      status: 200,
      body: { active: false },
    });
    expect(await run(t, m.owner.token, ME)).toMatchObject({ __typename: "UnauthenticatedError" });
  });
});

describe("moving from the generated hash key to TOKEN_HASH_KEY", () => {
  let state: Restarted;
  beforeAll(async () => {
    state = await restartedWith({}, { TOKEN_HASH_KEY: H2 });
  });
  afterAll(() => stopRestarted(state));

  it("keeps what the generated key hashed working, hashes new values under the configured key, and says so", async () => {
    const { after, m } = state;
    expect(await run(after, m.owner.token, ME)).toMatchObject({ __typename: "User", id: m.owner.id });
    expect(await introspect(after, m, m.opaque.token.accessToken)).toMatchObject({
      status: 200,
      body: { active: true },
    });
    const issued = await clientCredentials(after, m);
    expect(issued.status).toBe(200);
    const value = issued.body.access_token as string;
    expect(await storedHash(after, "access_tokens", idOf(value))).toBe(hashUnder(H2, value));
    const warnings = after.logs.map((line) => JSON.parse(line)).filter((entry) => entry.level === 40);
    expect(warnings).toContainEqual(
      expect.objectContaining({ secret: "token_hash_key", msg: expect.stringContaining("still verifies") }),
    );
    expect(after.logs.join("")).not.toContain(H2);
  });
});
