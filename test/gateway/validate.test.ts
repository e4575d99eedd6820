import { gql } from "graphql-request";
import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintTokenValue } from "../../src/domain/token-value.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { scrapeMetrics } from "../support/events.js";
import { uniqueName } from "../support/fixtures.js";
import {
  answerOf,
  createGatewayWorld,
  forbiddenAnswer,
  freshToken,
  type GatewayAnswer,
  type GatewayKey,
  type GatewayWorld,
  grantLoads,
  insufficientScopeAnswer,
  newKey,
  rawRequest,
  setShopSubscription,
  tokenRequest,
  unauthorizedAnswer,
  validate,
} from "../support/gateway.js";
import { createApiAs, createSubscriber } from "../support/graphql.js";
import {
  createSubscribedApplication,
  mustGenerateKeys,
  regenerateToken,
  revokeToken,
  sleep,
  waitFor,
} from "../support/keys.js";
import { idOf } from "../support/oauth.js";

const UPDATE_USER = gql`
  mutation UpdateUser($input: UpdateUserInput!) {
    updateUser(input: $input) { __typename ... on Error { code message } }
  }
`;

let t: TestApp;
let world: GatewayWorld;
/** Default key: no allowed domains, scopes read and write. */
let key: GatewayKey;
/** Scope read only. */
let reader: GatewayKey;
let items: string;

beforeAll(async () => {
  t = await startTestApp();
  world = await createGatewayWorld(t);
  key = await newKey(world);
  reader = await newKey(world, { scopes: ["read"] });
  items = `${world.shop.prefix}/items`;
});
afterAll(() => t.stop());

/** The exact 200 for an application token of `k` holding `scopes`. */
const allowedFor = (k: GatewayKey, scopes = "read write"): GatewayAnswer => ({
  status: 200,
  headers: {
    "cache-control": "no-store",
    "x-auth-subject": k.consumerKey,
    "x-auth-client-id": k.consumerKey,
    "x-auth-token-kind": "APPLICATION",
    "x-auth-application-id": k.applicationId,
    "x-auth-key-type": "PRODUCTION",
    "x-auth-scopes": scopes,
  },
  body: "",
});

const NOT_SUBSCRIBED = forbiddenAnswer("the token's application is not subscribed to this API");
const NO_RESOURCE = forbiddenAnswer("the API defines no such resource");
const AMBIGUOUS_PATH = forbiddenAnswer(
  "the original URI is not a plain path (no dot or empty segments, however encoded, and no backslashes)",
);
const NOT_ALLOWED = forbiddenAnswer("the calling domain is not allowed for this key");
const DOMAIN_REQUIRED = forbiddenAnswer("the domain header is required for this key");

const revoked = unauthorizedAnswer("the token is revoked");
const expired = unauthorizedAnswer("the token is expired");
const unknown = unauthorizedAnswer("the token is not known");
const malformed = unauthorizedAnswer("the token is malformed or not issued here");
const notBearer = unauthorizedAnswer("the Authorization header is not a bearer token");

describe("an active token on a subscribed API", () => {
  it("answers 200 with no body and headers naming subject, client, application, key type and scopes", async () => {
    expect(await validate(t, { token: key.token, uri: items, method: "GET" })).toEqual(allowedFor(key));
    expect(await validate(t, { token: key.token, uri: items, method: "POST" })).toEqual(allowedFor(key));
  });

  it("matches resource templates, ignores the query string, and lets a scope-less resource through", async () => {
    expect(await validate(t, { token: reader.token, uri: `${items}/42?expand=all`, method: "GET" })).toEqual(
      allowedFor(reader, "read"),
    );
    expect(await validate(t, { token: reader.token, uri: `${items}/`, method: "GET" })).toEqual(
      allowedFor(reader, "read"),
    );
    const none = await newKey(world, { scopes: [] });
    expect(await validate(t, { token: none.token, uri: `${world.shop.prefix}/status` })).toEqual(
      allowedFor(none, ""),
    );
  });

  it("serves a token it has checked once from its cache, without reading the database", async () => {
    const token = await freshToken(t, key);
    t.resetStatements();
    expect((await validate(t, { token, uri: items })).status).toBe(200);
    expect(grantLoads(t)).toBe(1);
    expect((await validate(t, { token, uri: items, method: "POST" })).status).toBe(200);
    expect(grantLoads(t)).toBe(1);
  });
});

describe("the cached hot path (answered before Fastify)", () => {
  /** Every response header but the date, and the body, of one raw request. */
  const exchange = async (path: string, headers: Record<string, string>, method = "GET") => {
    const response = await rawRequest(t.url, path, { method, headers });
    const all = Object.fromEntries([...response.headers].filter(([name]) => name !== "date"));
    return { status: response.status, headers: all, body: await response.text() };
  };
  const checks = async () => {
    const { samples } = await scrapeMetrics(t);
    const at = (status: number, path: string) =>
      samples.get(`token_manager_gateway_checks_total{status="${status}",path="${path}"}`) ?? 0;
    return { cached200: at(200, "cached"), lookup200: at(200, "lookup"), cached401: at(401, "cached") };
  };

  it("answers a cached token from the cache, with the very bytes the route sends", async () => {
    const token = await freshToken(t, key);
    const headers = { authorization: `Bearer ${token}`, "x-original-uri": items };
    const before = await checks();
    const first = await exchange("/validate", headers);
    const afterFirst = await checks();
    const second = await exchange("/validate", headers);
    const afterSecond = await checks();
    expect(afterFirst.lookup200 - before.lookup200).toBe(1);
    expect(afterFirst.cached200 - before.cached200).toBe(0);
    expect(afterSecond.cached200 - afterFirst.cached200).toBe(1);
    expect(afterSecond.lookup200 - afterFirst.lookup200).toBe(0);
    expect(second).toEqual(first);
    expect(second.headers).toMatchObject({ "content-length": "0", "cache-control": "no-store" });
    expect(second.headers["content-type"]).toBeUndefined();
    expect(second.headers["transfer-encoding"]).toBeUndefined();
  });

  it("answers HEAD on a cached token with the headers of GET and no body", async () => {
    const token = await freshToken(t, key);
    const headers = { authorization: `Bearer ${token}`, "x-original-uri": items };
    const get = await exchange("/validate", headers);
    const head = await exchange("/validate", headers, "HEAD");
    expect(head).toEqual({ ...get, body: "" });
    expect(head.headers["x-auth-scopes"]).toBe("read write");
  });

  it("sends a cached refusal as JSON with its length, like the route", async () => {
    const before = await checks();
    const refused = await exchange("/validate", {
      authorization: "Bearer tmat_nope",
      "x-original-uri": items,
    });
    expect((await checks()).cached401 - before.cached401).toBe(1);
    expect(refused.status).toBe(401);
    expect(refused.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(refused.headers["content-length"]).toBe(String(Buffer.byteLength(refused.body)));
    expect(JSON.parse(refused.body)).toEqual(malformed.body);
  });

  it("leaves other paths and methods to Fastify", async () => {
    const token = await freshToken(t, key);
    await validate(t, { token, uri: items });
    const post = await exchange(`/validate${items}`, { authorization: `Bearer ${token}` }, "POST");
    expect(post.status).toBe(200);
    expect((await exchange("/validatex", {})).status).toBe(404);
  });
});

describe("401 with WWW-Authenticate (RFC 6750 §3.1)", () => {
  it("names no error code when no token was sent", async () => {
    expect(await validate(t, { uri: items })).toEqual(unauthorizedAnswer("a bearer token is required", null));
  });

  it.each([
    ["a Basic header", "Basic dXNlcjpwYXNz", notBearer],
    ["Bearer without a token", "Bearer", notBearer],
    ["two tokens", "Bearer abc def", notBearer],
    ["a value of no known shape", "Bearer not-a-token", malformed],
    ["a refresh token", `Bearer ${mintTokenValue("tmrt").value}`, malformed],
    ["a JWT-shaped value that is no JWT", "Bearer aaa.bbb.ccc", malformed],
  ])("answers invalid_token for %s", async (_name, authorization, answer) => {
    expect(await validate(t, { authorization, uri: items })).toEqual(answer);
  });

  it("answers invalid_token for a mistyped token (checksum) without reading the database", async () => {
    // The genuine value first: its grant is cached, with the value that verified.
    expect((await validate(t, { token: key.token, uri: items })).status).toBe(200);
    const flip = (at: number) =>
      key.token.slice(0, at) + (key.token[at] === "0" ? "1" : "0") + key.token.slice(at + 1);
    t.resetStatements();
    // In the checksum, and in the secret (same id: the cached grant's).
    expect(await validate(t, { token: flip(key.token.length - 1), uri: items })).toEqual(malformed);
    expect(await validate(t, { token: flip(60), uri: items })).toEqual(malformed);
    expect(grantLoads(t)).toBe(0);
    expect((await validate(t, { token: key.token, uri: items })).status).toBe(200);
  });

  it("answers invalid_token for a well-formed token that names no row, or a row with another secret", async () => {
    expect(await validate(t, { token: mintTokenValue("tmat").value, uri: items })).toEqual(unknown);
    // The genuine value checked first: its grant is cached, and so is the value that verified.
    expect((await validate(t, { token: key.token, uri: items })).status).toBe(200);
    const forged = mintTokenValue("tmat", key.tokenId).value;
    expect(await validate(t, { token: forged, uri: items })).toEqual(unknown);
    // The genuine value still passes: the forgery did not poison the cache.
    expect((await validate(t, { token: key.token, uri: items })).status).toBe(200);
  });

  it("answers invalid_token for a token expired in the database before it was ever checked", async () => {
    const token = await freshToken(t, key);
    await t.app.deps.database.raw(
      "update access_tokens set expires_at = now() - interval '1 minute' where id = $1",
      [idOf(token)],
    );
    expect(await validate(t, { token, uri: items })).toEqual(expired);
  });

  it("refuses a cached token on the very next call after revokeToken, every time", async () => {
    // Several rounds: on PostgreSQL the event comes back through LISTEN, so a race would show.
    const stale: number[] = [];
    for (let round = 0; round < 40; round++) {
      const token = await freshToken(t, key);
      expect((await validate(t, { token, uri: items })).status).toBe(200);
      expect((await revokeToken(t, world.owner.token, token)).__typename).toBe("RevokeTokenPayload");
      const next = await validate(t, { token, uri: items });
      if (next.status === 200) stale.push(round);
      else expect(next).toEqual(revoked);
    }
    expect(stale, "rounds in which the revoked token was still accepted").toEqual([]);
  });

  it("refuses a revoked token that was never cached", async () => {
    const token = await freshToken(t, key);
    expect((await revokeToken(t, world.owner.token, token)).__typename).toBe("RevokeTokenPayload");
    expect(await validate(t, { token, uri: items })).toEqual(revoked);
  });
});

describe("expiry of a cached token", () => {
  /** An app whose sweeper never runs during the test, so that no EXPIRED event touches the cache. */
  let quiet: TestApp;
  let quietWorld: GatewayWorld;
  beforeAll(async () => {
    quiet = await startTestApp({ env: { SWEEPER_INTERVAL_MS: "3600000" } });
    quietWorld = await createGatewayWorld(quiet);
  });
  afterAll(() => quiet.stop());

  /** A key whose token lives two seconds, and the moment (epoch ms) it expires. */
  async function shortLived(app: TestApp, w: GatewayWorld) {
    const short = await newKey(w, { validityPeriod: 2 });
    const [row] = await app.app.deps.database.raw<{ expires_at: Date | string }>(
      "select expires_at from access_tokens where id = $1",
      [short.tokenId],
    );
    return { ...short, expiresAt: new Date(row!.expires_at).getTime() };
  }

  it("refuses it the moment it expires: expiry is checked in memory, without a reload", async () => {
    const short = await shortLived(quiet, quietWorld);
    const uri = `${quietWorld.shop.prefix}/items`;
    expect((await validate(quiet, { token: short.token, uri })).status).toBe(200);
    await sleep(short.expiresAt - Date.now() + 20);
    quiet.resetStatements();
    expect(await validate(quiet, { token: short.token, uri })).toEqual(expired);
    expect(grantLoads(quiet)).toBe(0);
  });

  it("refuses it the moment the grace period regenerateToken gave it ends, before the sweeper revokes it", async () => {
    const k = await newKey(quietWorld);
    const uri = `${quietWorld.shop.prefix}/items`;
    expect(await validate(quiet, { token: k.token, uri })).toEqual(allowedFor(k));
    const outcome = await regenerateToken(quiet, quietWorld.owner.token, {
      applicationId: k.applicationId,
      keyType: "PRODUCTION",
      gracePeriod: 1,
    });
    expect(outcome.__typename).toBe("RegenerateTokenPayload");
    expect(await validate(quiet, { token: k.token, uri })).toEqual(allowedFor(k));
    await sleep(1_100);
    expect(await validate(quiet, { token: k.token, uri })).toEqual(expired);
  });

  it("still calls it expired, not revoked, once the sweeper has announced its expiry", async () => {
    const short = await shortLived(t, world);
    expect((await validate(t, { token: short.token, uri: items })).status).toBe(200);
    await waitFor(async () => {
      const rows = await t.app.deps.database.raw(
        "select 1 from token_events where token_id = $1 and type = 'EXPIRED'",
        [short.tokenId],
      );
      return rows.length > 0 ? true : undefined;
    });
    expect(await validate(t, { token: short.token, uri: items })).toEqual(expired);
  });
});

describe("allowed domains (the seeds' ClientDomainHeader, default `domain`)", () => {
  it("lets every domain, and calls without the header, through for a key with no allowed domains", async () => {
    expect(await validate(t, { token: key.token, uri: items })).toEqual(allowedFor(key));
    expect(await validate(t, { token: key.token, uri: items, domain: "anything.test" })).toEqual(
      allowedFor(key),
    );
  });

  it("lets every domain, and calls without the header, through for a key allowing ALL", async () => {
    const all = await newKey(world, { allowedDomains: ["ALL"] });
    expect(await validate(t, { token: all.token, uri: items })).toEqual(allowedFor(all));
    expect(await validate(t, { token: all.token, uri: items, domain: "anything.test" })).toEqual(
      allowedFor(all),
    );
  });

  it("requires the header for a restricted key, and matches the host whatever its case, scheme or port", async () => {
    const shop = await newKey(world, { allowedDomains: ["shop.example.com"] });
    expect(await validate(t, { token: shop.token, uri: items })).toEqual(DOMAIN_REQUIRED);
    expect(await validate(t, { token: shop.token, uri: items, domain: "" })).toEqual(DOMAIN_REQUIRED);
    for (const domain of [
      "shop.example.com",
      "SHOP.Example.COM",
      "https://shop.example.com",
      "shop.example.com:8443",
    ]) {
      expect(await validate(t, { token: shop.token, uri: items, domain }), domain).toEqual(allowedFor(shop));
    }
    for (const domain of [
      "evil.example.com",
      "example.com",
      "shop.example.com.evil.test",
      "xshop.example.com",
    ]) {
      expect(await validate(t, { token: shop.token, uri: items, domain }), domain).toEqual(NOT_ALLOWED);
    }
  });

  it("matches *.example.com to any subdomain but not to example.com itself", async () => {
    const wild = await newKey(world, { allowedDomains: ["*.example.com"] });
    for (const domain of ["a.example.com", "b.a.example.com", "a.example.com:8080"]) {
      expect(await validate(t, { token: wild.token, uri: items, domain }), domain).toEqual(allowedFor(wild));
    }
    for (const domain of [
      "example.com",
      "notexample.com",
      "a.example.com.evil.test",
      ".example.com",
      "evil.test/x.example.com",
      "evil.test?x.example.com",
      "evil.test x.example.com",
      "user@evil.test#.example.com",
    ]) {
      expect(await validate(t, { token: wild.token, uri: items, domain }), domain).toEqual(NOT_ALLOWED);
    }
  });

  it("matches a domain listed with a port only on that port", async () => {
    const ported = await newKey(world, { allowedDomains: ["shop.example.com:8443"] });
    for (const domain of ["shop.example.com:8443", "https://shop.example.com:8443/page"]) {
      expect(await validate(t, { token: ported.token, uri: items, domain }), domain).toEqual(
        allowedFor(ported),
      );
    }
    for (const domain of ["shop.example.com", "shop.example.com:9443", "https://shop.example.com"]) {
      expect(await validate(t, { token: ported.token, uri: items, domain }), domain).toEqual(NOT_ALLOWED);
    }
  });

  describe("with CLIENT_DOMAIN_HEADER=x-client-domain", () => {
    let custom: TestApp;
    let restricted: GatewayKey;
    let uri: string;
    beforeAll(async () => {
      custom = await startTestApp({ env: { CLIENT_DOMAIN_HEADER: "X-Client-Domain" } });
      const customWorld = await createGatewayWorld(custom);
      restricted = await newKey(customWorld, { allowedDomains: ["shop.example.com"] });
      uri = `${customWorld.shop.prefix}/items`;
    });
    afterAll(() => custom.stop());

    it("reads the domain from that header only, and names it when it is missing", async () => {
      expect(
        await validate(custom, {
          token: restricted.token,
          uri,
          domain: "shop.example.com",
          domainHeader: "x-client-domain",
        }),
      ).toEqual(allowedFor(restricted));
      expect(await validate(custom, { token: restricted.token, uri, domain: "shop.example.com" })).toEqual(
        forbiddenAnswer("the x-client-domain header is required for this key"),
      );
      expect(
        await validate(custom, {
          token: restricted.token,
          uri,
          domain: "evil.test",
          domainHeader: "x-client-domain",
        }),
      ).toEqual(NOT_ALLOWED);
    });
  });
});

describe("APIs, resources and scopes", () => {
  it("refuses an API the token's application is not subscribed to", async () => {
    expect(await validate(t, { token: key.token, uri: `${world.other.prefix}/anything` })).toEqual(
      NOT_SUBSCRIBED,
    );
  });

  it("matches the context/version prefix by whole segments only", async () => {
    const [context] = world.shop.prefix.split("/v1");
    for (const uri of [
      `${world.shop.prefix}extra/items`,
      `${context}/v2/items`,
      `${context}`,
      "/",
      `${context}-x/v1/items`,
    ]) {
      expect(await validate(t, { token: key.token, uri }), uri).toEqual(NOT_SUBSCRIBED);
    }
  });

  it("refuses a path or method the API does not define", async () => {
    expect(await validate(t, { token: key.token, uri: `${world.shop.prefix}/orders` })).toEqual(NO_RESOURCE);
    expect(await validate(t, { token: key.token, uri: items, method: "PUT" })).toEqual(NO_RESOURCE);
    expect(await validate(t, { token: key.token, uri: `${items}/1/2` })).toEqual(NO_RESOURCE);
  });

  it("answers 403 insufficient_scope naming the resource's scopes when the token lacks one", async () => {
    expect(await validate(t, { token: reader.token, uri: items, method: "POST" })).toEqual(
      insufficientScopeAnswer("write"),
    );
    expect(await validate(t, { token: key.token, uri: `${items}/7`, method: "DELETE" })).toEqual(
      insufficientScopeAnswer("admin"),
    );
    expect(await validate(t, { token: reader.token, uri: items, method: "get" })).toEqual(
      allowedFor(reader, "read"),
    );
  });

  it("refuses a path with dot or empty segments (however encoded) or backslashes, wherever it leads", async () => {
    // The gateway hands the API the raw URI, which the API may resolve differently from us (or
    // not at all): none of these is checked as anything, each is refused (see pathOf).
    const [context] = world.shop.prefix.split("/v1");
    const shop = world.shop.prefix;
    const other = world.other.prefix;
    const ambiguous = [
      `${shop}/../../${other.slice(1)}/anything`,
      `${shop}/%2e%2e/%2E%2E${other}/anything`,
      `${shop}/..`,
      `${shop}/../v2/items`,
      `${context}/v1/./../v2/items`,
      // Each of these is the shop API's /items or /items/… to URL parsing: the token would pass.
      `${other}/../..${shop}/items`,
      `${shop}/status/../items`,
      `${shop}/./items`,
      `//internal${shop}/items`,
      `${shop}//items`,
      `${shop}/items/..%2F..%2F..${other.replaceAll("/", "%2F")}`,
      `${shop}/items/a%5c..%5c..%5c..${other.replaceAll("/", "%5c")}`,
      `${other}/..;/..;${shop}/items`,
      `${other}\\..\\..${shop}/items`,
      "",
      "shop/v1/items",
    ];
    for (const uri of ambiguous) {
      expect(await validate(t, { token: reader.token, uri }), uri).toEqual(AMBIGUOUS_PATH);
    }
    // A query may hold anything: only the path is matched.
    expect(await validate(t, { token: reader.token, uri: `${items}?next=/../..${other}//x%2F` })).toEqual(
      allowedFor(reader, "read"),
    );
    // Percent-encoded octets are kept as they are, and matched as they are: an encoded slash
    // inside a segment (an id such as group/project) is one segment here, and stays in the API
    // for whoever decodes it.
    for (const id of ["caf%C3%A9", "group%2Fproject", "a%5Cb"]) {
      expect(await validate(t, { token: reader.token, uri: `${items}/${id}` }), id).toEqual(
        allowedFor(reader, "read"),
      );
    }
  });
});

describe("which resource a path is", () => {
  const SECRET = [
    { method: "GET", pathPattern: "/items/{id}", scopes: ["read"] },
    { method: "GET", pathPattern: "/items/secret", scopes: ["admin"] },
    { method: "GET", pathPattern: "/items/{id}/secret", scopes: ["admin"] },
    { method: "GET", pathPattern: "/*", scopes: ["read"] },
  ];
  /** An API with these resources (declared in this order) and a token of a key holding `read` only. */
  async function readerOf(resources: typeof SECRET) {
    const context = `/${uniqueName("res")}`;
    const api = await createApiAs(t.client(world.adminToken), {
      name: "Resources",
      context,
      version: "v1",
      scopes: [{ name: "read" }, { name: "admin" }],
      resources,
    });
    const app = await createSubscribedApplication(t, world.owner.token, api.id);
    const issued = await mustGenerateKeys(t, world.owner.token, {
      applicationId: app.id,
      keyType: "PRODUCTION",
      scopes: ["read"],
    });
    return { prefix: `${context}/v1`, token: issued.token.accessToken };
  }

  it.each([
    ["declared catch-all first", SECRET],
    ["declared specific first", [...SECRET].reverse()],
  ])("takes the most specific resource, whatever the order (%s)", async (_name, resources) => {
    const { prefix, token } = await readerOf(resources);
    const status = async (uri: string) => (await validate(t, { token, uri })).status;
    expect(await validate(t, { token, uri: `${prefix}/items/secret` })).toEqual(
      insufficientScopeAnswer("admin"),
    );
    expect(await status(`${prefix}/items/42`)).toBe(200);
    expect(await status(`${prefix}/anything/else`)).toBe(200);
  });

  it("needs the scopes of every resource an API may read the path as: encoded, separated or without ;parameters", async () => {
    const { prefix, token } = await readerOf(SECRET);
    for (const tail of [
      "/items/%73ecr%65t",
      "/items/secret;x",
      "/items/secret;jsessionid=1",
      "/items/1%2Fsecret",
      "/items/1%2fsecret",
      "/items/1%5Csecret",
      "/items/1;x/secret",
    ]) {
      expect(await validate(t, { token, uri: `${prefix}${tail}` }), tail).toEqual(
        insufficientScopeAnswer("admin"),
      );
    }
    // Other escapes are no separators, and readings that name no resource do not count.
    for (const tail of ["/items/a%20b", "/items/a%3Bb", "/items/group%2Fproject"]) {
      expect((await validate(t, { token, uri: `${prefix}${tail}` })).status, tail).toBe(200);
    }
  });
});

describe("subscription and key changes", () => {
  it("refuses an application's cached tokens on the very next call once it unsubscribes, and lets them through once it subscribes again", async () => {
    const k = await newKey(world);
    expect(await validate(t, { token: k.token, uri: items })).toEqual(allowedFor(k));
    t.resetStatements();
    expect(await validate(t, { token: k.token, uri: items })).toEqual(allowedFor(k));
    expect(grantLoads(t)).toBe(0);

    expect(await setShopSubscription(t, world, k, false)).toBe("UnsubscribePayload");
    expect(await validate(t, { token: k.token, uri: items })).toEqual(NOT_SUBSCRIBED);
    expect(await setShopSubscription(t, world, k, true)).toBe("SubscribePayload");
    expect(await validate(t, { token: k.token, uri: items })).toEqual(allowedFor(k));
  });

  it("applies a key's new allowed domains at once to the tokens it keeps for a grace period", async () => {
    const k = await newKey(world, { allowedDomains: ["shop.example.com"] });
    const call = (domain: string) => validate(t, { token: k.token, uri: items, domain });
    expect(await call("shop.example.com")).toEqual(allowedFor(k));
    const outcome = await regenerateToken(t, world.owner.token, {
      applicationId: k.applicationId,
      keyType: "PRODUCTION",
      allowedDomains: ["app.example.org"],
      gracePeriod: 600,
    });
    expect(outcome.__typename).toBe("RegenerateTokenPayload");
    expect(await call("shop.example.com")).toEqual(NOT_ALLOWED);
    expect(await call("app.example.org")).toEqual(allowedFor(k));
  });

  it("keeps the cached tokens of other applications", async () => {
    const [leaving, staying] = [await newKey(world), await newKey(world)];
    for (const k of [leaving, staying]) {
      expect(await validate(t, { token: k.token, uri: items })).toEqual(allowedFor(k));
    }
    expect(await setShopSubscription(t, world, leaving, false)).toBe("UnsubscribePayload");
    t.resetStatements();
    expect(await validate(t, { token: staying.token, uri: items })).toEqual(allowedFor(staying));
    expect(grantLoads(t)).toBe(0);
  });
});

describe("Envoy ext_authz style: the original method and path on /validate/<path>", () => {
  it("checks the path after /validate with the request's own method", async () => {
    const envoy = (token: string, method: string, path: string) =>
      validate(t, { token, requestMethod: method, path: `/validate${path}` });
    expect(await envoy(key.token, "POST", items)).toEqual(allowedFor(key));
    expect(await envoy(reader.token, "POST", items)).toEqual(insufficientScopeAnswer("write"));
    expect(await envoy(reader.token, "GET", `${items}/9?q=1`)).toEqual(allowedFor(reader, "read"));
    expect(await envoy(key.token, "DELETE", `${items}/9`)).toEqual(insufficientScopeAnswer("admin"));
    expect(await envoy(key.token, "GET", `${world.other.prefix}/x`)).toEqual(NOT_SUBSCRIBED);
  });

  it("refuses dot segments in a raw request line too, even where they resolve into the API", async () => {
    for (const path of [
      `/validate${world.shop.prefix}/../..${world.other.prefix}/x`,
      `/validate${world.other.prefix}/../..${items}`,
    ]) {
      const response = await rawRequest(t.url, path, { headers: { authorization: `Bearer ${key.token}` } });
      expect(await answerOf(response), path).toEqual(AMBIGUOUS_PATH);
    }
  });
});

describe("JWT access tokens", () => {
  let jwt: GatewayKey;
  beforeAll(async () => {
    jwt = await newKey(world, { tokenFormat: "JWT" });
  });

  it("validates a JWT by its signature, with the same headers as an opaque token", async () => {
    expect(decodeJwt(jwt.token).jti).toBe(jwt.tokenId);
    expect(await validate(t, { token: jwt.token, uri: items, method: "POST" })).toEqual(allowedFor(jwt));
  });

  it("refuses a JWT with an altered signature, or signed by another key with our kid", async () => {
    const [head, payload, signature] = jwt.token.split(".") as [string, string, string];
    const flipped = `${head}.${payload}.${signature.slice(0, -2)}${signature.endsWith("AA") ? "BB" : "AA"}`;
    expect(await validate(t, { token: flipped, uri: items })).toEqual(malformed);
    const { alg, kid } = decodeProtectedHeader(jwt.token);
    const { privateKey } = await generateKeyPair(alg!);
    const impostor = await new SignJWT(decodeJwt(jwt.token))
      .setProtectedHeader({ alg: alg!, kid: kid!, typ: "at+jwt" })
      .sign(privateKey);
    expect(await validate(t, { token: impostor, uri: items })).toEqual(malformed);
  });

  it("refuses a JWT once it is revoked, though its signature is still good", async () => {
    const token = await freshToken(t, jwt);
    expect(await validate(t, { token, uri: items })).toEqual(allowedFor(jwt));
    expect((await revokeToken(t, world.owner.token, token)).__typename).toBe("RevokeTokenPayload");
    expect(await validate(t, { token, uri: items })).toEqual(revoked);
  });
});

describe("user tokens from the password grant", () => {
  let login: GatewayKey;
  let user: { id: string; username: string; password: string };
  beforeAll(async () => {
    login = await newKey(world, { grantTypes: ["client_credentials", "password"], scopes: ["read"] });
    const username = uniqueName("enduser");
    user = { ...(await createSubscriber(t, world.adminToken, username)), username };
  });

  const passwordToken = async () =>
    (
      await tokenRequest(t, login, {
        grant_type: "password",
        username: user.username,
        password: user.password,
      })
    ).access_token;

  it("reach the APIs of their application, naming the user", async () => {
    const token = await passwordToken();
    expect(await validate(t, { token, uri: `${items}/1` })).toEqual({
      status: 200,
      headers: {
        "cache-control": "no-store",
        "x-auth-subject": user.id,
        "x-auth-username": user.username,
        "x-auth-client-id": login.consumerKey,
        "x-auth-token-kind": "USER",
        "x-auth-application-id": login.applicationId,
        "x-auth-key-type": "PRODUCTION",
        "x-auth-scopes": "read",
      },
      body: "",
    });
    expect(await validate(t, { token, uri: items, method: "POST" })).toEqual(
      insufficientScopeAnswer("write"),
    );
    expect(await validate(t, { token, uri: `${world.other.prefix}/x` })).toEqual(NOT_SUBSCRIBED);
  });

  it("are refused once their user is disabled, though already cached", async () => {
    const token = await passwordToken();
    expect((await validate(t, { token, uri: items })).status).toBe(200);
    const { updateUser } = await t
      .client(world.adminToken)
      .request<any>(UPDATE_USER, { input: { id: user.id, disabled: true } });
    expect(updateUser).toEqual({ __typename: "UpdateUserPayload" });
    expect(await validate(t, { token, uri: items })).toEqual(revoked);
  });
});
