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

describe("rotating TOKEN_HASH_KEY: the new key first, the old one after it", () => {
  let state: Restarted;
  beforeAll(async () => {
    state = await restartedWith({ TOKEN_HASH_KEY: H1 }, { TOKEN_HASH_KEY: `${H2},${H1}` });
  });
  afterAll(() => stopRestarted(state));

  it("keeps every credential hashed under the old key working", async () => {
    const { after, m } = state;
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

  it("hashes what it issues under the new key only, and a consumer secret again at its first use", async () => {
    const { after, m } = state;
    const secretId = idOf(m.rotatedSecret);
    const before = await storedHash(after, "consumer_secrets", secretId);
    // Unless the first test used it already: either way it was made under H1 or is now under H2.
    expect([hashUnder(H1, m.rotatedSecret), hashUnder(H2, m.rotatedSecret)]).toContain(before);
    const issued = await clientCredentials(after, m);
    expect(issued.status).toBe(200);
    const value = issued.body.access_token as string;
    expect(await storedHash(after, "access_tokens", idOf(value))).toBe(hashUnder(H2, value));
    expect(await storedHash(after, "consumer_secrets", secretId)).toBe(hashUnder(H2, m.rotatedSecret));
    // The cached client now holds the new hash: more requests write nothing more.
    expect((await clientCredentials(after, m)).status).toBe(200);
    expect(await storedHash(after, "consumer_secrets", secretId)).toBe(hashUnder(H2, m.rotatedSecret));
  });

  it("once the old key leaves the list: the secret hashed again still works, what only the old key hashed does not", async () => {
    const { after, m } = state;
    await after.stop({ keepData: true });
    const last = await startTestApp({
      dataDir: after.dataDir,
      databaseUrl: after.databaseUrl,
      env: { TOKEN_HASH_KEY: H2 },
    });
    state = { after: last, m };
    const issued = await clientCredentials(last, m);
    expect(issued.status).toBe(200);
    expect(await introspect(last, m, issued.body.access_token as string)).toMatchObject({
      status: 200,
      body: { active: true },
    });
    expect(await introspect(last, m, m.opaque.token.accessToken)).toEqual({
      status: 200,
      body: { active: false },
    });
    expect(await run(last, m.owner.token, ME)).toMatchObject({ __typename: "UnauthenticatedError" });
  });
});

describe("moving from the generated hash key to TOKEN_HASH_KEY", () => {
  let state: Restarted;
  beforeAll(async () => {
    state = await restartedWith({}, { TOKEN_HASH_KEY: H2 });
  });
  afterAll(() => stopRestarted(state));

  it("keeps what the generated key hashed working, and hashes new values under the configured key", async () => {
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
  });
});
