import { createClient } from "graphql-ws";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { TestApp } from "../support/app.js";
import { LOGIN } from "../support/graphql.js";
import {
  basicHeader,
  clientCredentialsRequest,
  createWorld,
  INVALID_CLIENT_BASIC,
  introspectionRequest,
  JSON_NO_STORE,
  newClient,
  newUser,
  type Owner,
  oauthError,
  passwordRequest,
  postRaw,
  revocationRequest,
  startOAuthApp,
  type TestClient,
  type Wire,
  type World,
  wire,
} from "../support/oauth.js";
import { runOnce } from "../support/ws.js";

/** 429 temporarily_unavailable with Retry-After (1..60 s, the default AUTH_FAILURE_WINDOW) matching the text. */
function expectLimited(response: Wire) {
  const retryAfter = Number(response.headers["retry-after"]);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
  expect(response).toEqual({
    status: 429,
    headers: { ...JSON_NO_STORE, "retry-after": String(retryAfter) },
    body: {
      error: "temporarily_unavailable",
      error_description: `too many failed attempts: retry after ${retryAfter} seconds`,
    },
  });
}

const withSecret = (c: TestClient, secret: string): TestClient => ({ ...c, secret });
const asClient = (c: TestClient, clientId: string): TestClient => ({
  ...c,
  client: { client_id: clientId },
  clientId,
});

describe("with AUTH_FAILURE_LIMIT=3 (per client id and source, and per username)", () => {
  let t: TestApp;
  let world: World;
  beforeAll(async () => {
    t = await startOAuthApp({ AUTH_FAILURE_LIMIT: "3", AUTH_FAILURE_LIMIT_PER_SOURCE: "100" });
    world = await createWorld(t);
  });
  afterAll(() => t.stop());

  describe("failed client authentication, per client id from one source", () => {
    let c: TestClient;
    let other: TestClient;
    beforeAll(async () => {
      c = await newClient(world);
      other = await newClient(world);
    });

    it("refuses the 4th attempt from the source with 429, and then the right secret too, on every endpoint", async () => {
      const wrong = withSecret(c, other.secret);
      for (let i = 0; i < 3; i++) {
        expect(await wire(await clientCredentialsRequest(world, wrong))).toEqual(INVALID_CLIENT_BASIC);
      }
      expectLimited(await wire(await clientCredentialsRequest(world, wrong)));
      expectLimited(await wire(await clientCredentialsRequest(world, c)));
      expectLimited(await wire(await clientCredentialsRequest(world, c, {}, "post")));
      expectLimited(await wire(await introspectionRequest(world, c, "x")));
      expectLimited(await wire(await revocationRequest(world, c, "x")));
    });

    it("keeps serving another client id from the same source", async () => {
      expect((await clientCredentialsRequest(world, other)).status).toBe(200);
      const wrong = withSecret(other, c.secret);
      expect(await wire(await clientCredentialsRequest(world, wrong))).toEqual(INVALID_CLIENT_BASIC);
      expect((await clientCredentialsRequest(world, other)).status).toBe(200);
    });

    it("counts only failures: a client that keeps succeeding is never limited", async () => {
      const busy = await newClient(world);
      for (let i = 0; i < 6; i++) expect((await clientCredentialsRequest(world, busy)).status).toBe(200);
    });
  });

  describe("failed passwords, per username", () => {
    let c: TestClient;
    let victim: Owner;
    beforeAll(async () => {
      c = await newClient(world);
      victim = await newUser(t, world.adminToken);
    });

    it("refuses the 4th password attempt for a username with 429, and then the right password too", async () => {
      const bad = { username: victim.username, password: "wrong-password" };
      for (let i = 0; i < 3; i++) {
        expect(await wire(await passwordRequest(world, c, bad))).toEqual(
          oauthError(400, "invalid_grant", "invalid username or password"),
        );
      }
      expectLimited(await wire(await passwordRequest(world, c, bad)));
      const right = { username: victim.username, password: victim.password };
      expectLimited(await wire(await passwordRequest(world, c, right)));
      // The username is the principal, whatever its case.
      expectLimited(
        await wire(await passwordRequest(world, c, { ...right, username: victim.username.toUpperCase() })),
      );
    });

    it("keeps serving other usernames, and the client itself, from the same source", async () => {
      const right = { username: world.owner.username, password: world.owner.password };
      expect((await passwordRequest(world, c, right)).status).toBe(200);
      expect((await clientCredentialsRequest(world, c)).status).toBe(200);
    });
  });
});

describe("failed client authentication, per source (AUTH_FAILURE_LIMIT_PER_SOURCE=6)", () => {
  let t: TestApp;
  let world: World;
  let c: TestClient;
  beforeAll(async () => {
    t = await startOAuthApp({ AUTH_FAILURE_LIMIT: "3", AUTH_FAILURE_LIMIT_PER_SOURCE: "6" });
    world = await createWorld(t);
    c = await newClient(world);
  });
  afterAll(() => t.stop());

  it("blocks every client id from the source once its failures reach the limit", async () => {
    // Six failures spread over three client ids: none reaches the per-client limit of 3.
    const ids = ["ghost-a", "ghost-b", "ghost-c", "ghost-a", "ghost-b", "ghost-c"];
    for (const [i, id] of ids.entries()) {
      expect(await wire(await clientCredentialsRequest(world, asClient(c, id)))).toEqual(
        INVALID_CLIENT_BASIC,
      );
      // Below the source limit, a good client still gets through.
      if (i < ids.length - 1) expect((await clientCredentialsRequest(world, c)).status).toBe(200);
    }
    // The sixth failure used the source's budget: now even a good client with its right secret waits.
    expectLimited(await wire(await clientCredentialsRequest(world, c)));
    expectLimited(await wire(await clientCredentialsRequest(world, asClient(c, "ghost-d"))));
  });
});

/** client_credentials with client_secret_basic, sent with an X-Forwarded-For (and a query string: Fastify's path). */
const forwardedGrant = (t: TestApp, c: TestClient, forwardedFor: string | null, viaFastify = false) =>
  postRaw(t, viaFastify ? "/token?via=fastify" : "/token", "grant_type=client_credentials", {
    "content-type": "application/x-www-form-urlencoded",
    authorization: basicHeader(c.clientId, c.secret),
    ...(forwardedFor ? { "x-forwarded-for": forwardedFor } : {}),
  });

describe("the source of a request behind proxies (AUTH_FAILURE_LIMIT_PER_SOURCE=3)", () => {
  describe("with no TRUST_PROXY: the socket's peer, whatever X-Forwarded-For says", () => {
    let t: TestApp;
    let world: World;
    let c: TestClient;
    beforeAll(async () => {
      t = await startOAuthApp({ AUTH_FAILURE_LIMIT: "100", AUTH_FAILURE_LIMIT_PER_SOURCE: "3" });
      world = await createWorld(t);
      c = await newClient(world);
    });
    afterAll(() => t.stop());

    it("counts failures sent with changing X-Forwarded-For values against one source", async () => {
      const ghost = asClient(c, "ghost");
      for (const forwardedFor of ["198.51.100.1", "198.51.100.2", "198.51.100.3"]) {
        expect((await forwardedGrant(t, ghost, forwardedFor)).status).toBe(401);
      }
      expectLimited(await wire(await forwardedGrant(t, c, "198.51.100.4")));
      expectLimited(await wire(await forwardedGrant(t, c, "198.51.100.4", true)));
    });
  });

  describe("with TRUST_PROXY=loopback: the nearest address of X-Forwarded-For that is not a proxy", () => {
    let t: TestApp;
    let world: World;
    let c: TestClient;
    beforeAll(async () => {
      t = await startOAuthApp({
        AUTH_FAILURE_LIMIT: "100",
        AUTH_FAILURE_LIMIT_PER_SOURCE: "3",
        TRUST_PROXY: "loopback",
      });
      world = await createWorld(t);
      c = await newClient(world);
    });
    afterAll(() => t.stop());

    it("limits the client that failed, and not the others behind the same proxy", async () => {
      const ghost = asClient(c, "ghost");
      // A client may prepend what it likes: the address the trusted proxy appended is the one counted.
      const fromAttacker = ["10.9.9.9, 203.0.113.7", "10.9.9.8, 203.0.113.7", "203.0.113.7"];
      for (const forwardedFor of fromAttacker) {
        expect((await forwardedGrant(t, ghost, forwardedFor)).status).toBe(401);
      }
      // Both ways in (the fast path and Fastify) know the attacker...
      expectLimited(await wire(await forwardedGrant(t, c, "203.0.113.7")));
      expectLimited(await wire(await forwardedGrant(t, c, "203.0.113.7", true)));
      // ...and serve the others: another address behind the proxy, and the proxy itself.
      expect((await forwardedGrant(t, c, "203.0.113.8")).status).toBe(200);
      expect((await forwardedGrant(t, c, "203.0.113.8", true)).status).toBe(200);
      expect((await forwardedGrant(t, c, null)).status).toBe(200);
    });

    it("counts a failed login over WebSocket against the address the proxy forwarded", async () => {
      // The upgrade request carries X-Forwarded-For, as a proxy in front of the service sends it.
      class Forwarded extends WebSocket {
        constructor(url: string, protocols?: string | string[]) {
          super(url, protocols, { headers: { "x-forwarded-for": "203.0.113.20" } });
        }
      }
      const client = createClient({
        url: t.graphqlUrl.replace(/^http/, "ws"),
        webSocketImpl: Forwarded,
        connectionParams: { authorization: `Bearer ${world.adminToken}` },
        retryAttempts: 0,
        lazy: true,
      });
      try {
        const wrong = { username: world.owner.username, password: "not-the-password" };
        for (let i = 0; i < 3; i++) {
          const { data } = await runOnce(client, LOGIN, { input: wrong });
          expect(data.login).toMatchObject({ __typename: "InvalidCredentialsError" });
        }
      } finally {
        await client.dispose();
      }
      // The forwarded address has used its budget; the proxy's other clients have not.
      expectLimited(await wire(await forwardedGrant(t, c, "203.0.113.20")));
      expect((await forwardedGrant(t, c, "203.0.113.21")).status).toBe(200);
    });
  });

  it("refuses to start with a TRUST_PROXY entry that is no address", async () => {
    await expect(startOAuthApp({ TRUST_PROXY: "loopback, proxy.example.com" })).rejects.toThrow(
      /TRUST_PROXY: must list addresses, CIDR ranges, loopback, linklocal or uniquelocal/,
    );
  });
});

describe("a client's failures from one source (TRUST_PROXY=loopback, AUTH_FAILURE_LIMIT=3)", () => {
  let t: TestApp;
  let world: World;
  let c: TestClient;
  beforeAll(async () => {
    t = await startOAuthApp({
      AUTH_FAILURE_LIMIT: "3",
      AUTH_FAILURE_LIMIT_PER_SOURCE: "100",
      TRUST_PROXY: "loopback",
    });
    world = await createWorld(t);
    c = await newClient(world);
  });
  afterAll(() => t.stop());

  it("lock that source out of the client, and leave the client working from its own address", async () => {
    // Someone who learnt the client id fails its secret from 203.0.113.7 until that source is refused…
    const guess = withSecret(c, "not-the-secret");
    for (let i = 0; i < 3; i++) {
      expect(await wire(await forwardedGrant(t, guess, "203.0.113.7"))).toEqual(INVALID_CLIENT_BASIC);
    }
    expectLimited(await wire(await forwardedGrant(t, guess, "203.0.113.7")));
    expectLimited(await wire(await forwardedGrant(t, c, "203.0.113.7", true)));
    // …while the client itself, calling from its own address, is not locked out (both ways in).
    expect((await forwardedGrant(t, c, "198.51.100.30")).status).toBe(200);
    expect((await forwardedGrant(t, c, "198.51.100.30", true)).status).toBe(200);
    // Its own failures count apart from the other source's.
    expect(await wire(await forwardedGrant(t, guess, "198.51.100.30"))).toEqual(INVALID_CLIENT_BASIC);
    expect((await forwardedGrant(t, c, "198.51.100.30")).status).toBe(200);
  });
});
