import { connect } from "node:net";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mintTokenValue, parseTokenValue, TOKEN_PREFIXES } from "../../src/domain/token-value.js";
import type { TestApp } from "../support/app.js";
import { sleep } from "../support/keys.js";
import {
  basicHeader,
  clientCredentialsRequest,
  createWorld,
  INVALID_CLIENT,
  INVALID_CLIENT_BASIC,
  insecure,
  introspectionRequest,
  newClient,
  oauthError,
  postForm,
  postRaw,
  revocationRequest,
  startOAuthApp,
  type TestClient,
  type World,
  wire,
} from "../support/oauth.js";

const ENDPOINTS = ["/token", "/revoke", "/introspect"] as const;
const NOT_A_FORM = oauthError(
  400,
  "invalid_request",
  "the request body must be application/x-www-form-urlencoded",
);
const MALFORMED = oauthError(400, "invalid_request", "the request body is malformed or not a form");
const missing = (name: string) => oauthError(400, "invalid_request", `the ${name} parameter is missing`);
const repeated = (name: string) => oauthError(400, "invalid_request", `the ${name} parameter is repeated`);

let t: TestApp;
let world: World;
let c: TestClient;
let other: TestClient;
beforeAll(async () => {
  // Failed authentications are part of this file's job: keep the failure limits out of the way.
  t = await startOAuthApp({ AUTH_FAILURE_LIMIT: "1000", AUTH_FAILURE_LIMIT_PER_SOURCE: "1000" });
  world = await createWorld(t);
  c = await newClient(world);
  other = await newClient(world);
});
afterAll(() => t.stop());

/** A form for each endpoint that would succeed with good client credentials. */
const VALID_FORM: Record<(typeof ENDPOINTS)[number], string> = {
  "/token": "grant_type=client_credentials",
  "/revoke": "token=anything",
  "/introspect": "token=anything",
};

describe("missing and repeated parameters (RFC 6749 §3.1, §3.2, §5.2)", () => {
  it.each([
    ["no grant_type", "scope=read"],
    ["an empty grant_type", "grant_type=&scope=read"],
  ])("answers a token request with %s with invalid_request", async (_name, form) => {
    expect(await wire(await postForm(t, "/token", c, form))).toEqual(missing("grant_type"));
  });

  it("answers missing grant_type with invalid_request even before client authentication", async () => {
    expect(await wire(await postForm(t, "/token", null, ""))).toEqual(missing("grant_type"));
  });

  it.each(["/revoke", "/introspect"])("answers %s without token with invalid_request", async (path) => {
    expect(await wire(await postForm(t, path, c, "token_type_hint=access_token"))).toEqual(missing("token"));
  });

  it.each([
    ["/token", "grant_type=client_credentials&grant_type=client_credentials", "grant_type"],
    ["/token", "grant_type=client_credentials&scope=read&scope=write", "scope"],
    ["/token", "grant_type=password&username=a&password=b&password=c", "password"],
    ["/revoke", "token=a&token=b", "token"],
    ["/introspect", "token=a&token_type_hint=x&token_type_hint=y", "token_type_hint"],
  ])("answers %s with a repeated parameter (%s) with invalid_request", async (path, form, name) => {
    expect(await wire(await postForm(t, path, c, form))).toEqual(repeated(name));
  });

  it("refuses a repeated client_secret in a client_secret_post request", async () => {
    const form = `grant_type=client_credentials&client_id=${c.clientId}&client_secret=${c.secret}&client_secret=${c.secret}`;
    expect(await wire(await postForm(t, "/token", null, form))).toEqual(repeated("client_secret"));
  });
});

describe("unsupported grant types (RFC 6749 §5.2)", () => {
  it.each(["authorization_code", "urn:ietf:params:oauth:grant-type:device_code", "implicit"])(
    "answers grant_type=%s with unsupported_grant_type",
    async (grantType) => {
      const response = await oauth.genericTokenEndpointRequest(
        world.as,
        c.client,
        oauth.ClientSecretBasic(c.secret),
        grantType,
        { code: "abc" },
        insecure,
      );
      expect(await wire(response)).toEqual(
        oauthError(400, "unsupported_grant_type", `the ${grantType} grant is not supported`),
      );
    },
  );
});

describe("error_description (RFC 6749 §5.2: printable ASCII, no quote or backslash)", () => {
  it.each([
    ["grant_type=client%C3%A9credentials", "the client?credentials grant is not supported"],
    ["grant_type=a%22b%5Cc", "the a'b?c grant is not supported"],
  ])("quotes what the client sent within that alphabet (%s)", async (form, description) => {
    expect(await wire(await postForm(t, "/token", c, form))).toEqual(
      oauthError(400, "unsupported_grant_type", description),
    );
  });
});

describe("client authentication (RFC 6749 §2.3, §5.2)", () => {
  const wrongSecret = (client: TestClient): TestClient => ({ ...client, secret: other.secret });
  const unknownClient = (): TestClient => ({
    ...c,
    client: { client_id: "no-such-client" },
    clientId: "no-such-client",
  });

  const requests = {
    "/token": (client: TestClient, method: "basic" | "post") =>
      clientCredentialsRequest(world, client, {}, method),
    "/revoke": (client: TestClient, method: "basic" | "post") =>
      revocationRequest(world, client, "x", {}, method),
    "/introspect": (client: TestClient, method: "basic" | "post") =>
      introspectionRequest(world, client, "x", {}, method),
  };

  it.each(ENDPOINTS)(
    "%s: a wrong secret with Basic is 401 invalid_client with a Basic challenge",
    async (path) => {
      expect(await wire(await requests[path](wrongSecret(c), "basic"))).toEqual(INVALID_CLIENT_BASIC);
    },
  );

  it.each(ENDPOINTS)(
    "%s: a wrong secret in the body is 401 invalid_client without a challenge",
    async (path) => {
      expect(await wire(await requests[path](wrongSecret(c), "post"))).toEqual(INVALID_CLIENT);
    },
  );

  it.each(ENDPOINTS)(
    "%s: right after the genuine secret, one forged with its id is 401 invalid_client",
    async (path) => {
      const parsed = parseTokenValue(c.secret, TOKEN_PREFIXES.consumerSecret);
      expect(parsed).not.toBeNull();
      const id = parsed?.id ?? "";
      const forged: TestClient = { ...c, secret: mintTokenValue(TOKEN_PREFIXES.consumerSecret, id).value };
      expect((await requests[path](c, "basic")).status).toBe(200);
      expect(await wire(await requests[path](forged, "basic"))).toEqual(INVALID_CLIENT_BASIC);
      expect(await wire(await requests[path](forged, "post"))).toEqual(INVALID_CLIENT);
      expect((await requests[path](c, "post")).status).toBe(200);
    },
  );

  it.each(ENDPOINTS)("%s: an unknown client id is 401 invalid_client", async (path) => {
    expect(await wire(await requests[path](unknownClient(), "basic"))).toEqual(INVALID_CLIENT_BASIC);
    expect(await wire(await requests[path](unknownClient(), "post"))).toEqual(INVALID_CLIENT);
  });

  it.each(ENDPOINTS)("%s: no client authentication at all is 401 invalid_client", async (path) => {
    expect(await wire(await postForm(t, path, null, VALID_FORM[path]))).toEqual(INVALID_CLIENT);
  });

  it.each(ENDPOINTS)("%s: a client_id without client_secret is 401 invalid_client", async (path) => {
    const form = `${VALID_FORM[path]}&client_id=${c.clientId}`;
    expect(await wire(await postForm(t, path, null, form))).toEqual(INVALID_CLIENT);
  });

  it.each(ENDPOINTS)("%s: Basic with the same client_id in the body is accepted (§3.2.1)", async (path) => {
    const form = `${VALID_FORM[path]}&client_id=${encodeURIComponent(c.clientId)}`;
    expect((await wire(await postForm(t, path, c, form))).status).toBe(200);
  });

  it.each(ENDPOINTS)("%s: Basic with another client_id in the body is invalid_request", async (path) => {
    const form = `${VALID_FORM[path]}&client_id=someone-else`;
    expect(await wire(await postForm(t, path, c, form))).toEqual(
      oauthError(
        400,
        "invalid_request",
        "the client_id parameter names another client than the Basic credentials",
      ),
    );
  });

  it.each(ENDPOINTS)("%s: Basic and client_secret_post together are invalid_request", async (path) => {
    const form = `${VALID_FORM[path]}&client_id=${c.clientId}&client_secret=${c.secret}`;
    expect(await wire(await postForm(t, path, c, form))).toEqual(
      oauthError(400, "invalid_request", "use only one client authentication method"),
    );
  });

  it.each([
    ["not base64", "Basic !!!"],
    ["no colon", `Basic ${Buffer.from("just-an-id").toString("base64")}`],
    ["a broken percent-encoding", `Basic ${Buffer.from("%zz:%zz").toString("base64")}`],
    ["an empty value", "Basic "],
  ])(
    "answers a Basic header with %s with 401 invalid_client and a challenge",
    async (_name, authorization) => {
      const response = await postRaw(t, "/token", "grant_type=client_credentials", {
        "content-type": "application/x-www-form-urlencoded",
        authorization,
      });
      expect(await wire(response)).toEqual(INVALID_CLIENT_BASIC);
    },
  );

  it("accepts Basic credentials whose parts are form-urlencoded (RFC 6749 §2.3.1)", async () => {
    // oauth4webapi encodes "-" and "_" of the client id, as §2.3.1 allows; a plain encoding works too.
    const response = await postRaw(t, "/token", "grant_type=client_credentials", {
      "content-type": "application/x-www-form-urlencoded",
      authorization: basicHeader(c.clientId, c.secret),
    });
    expect(response.status).toBe(200);
  });

  it.each(["Basic  ", "basic ", "BASIC   "])(
    "accepts the Basic scheme in any case, followed by one or more spaces (RFC 7235 §2.1): %j",
    async (scheme) => {
      const encoded = basicHeader(c.clientId, c.secret).slice("Basic ".length);
      const response = await postRaw(t, "/token", "grant_type=client_credentials", {
        "content-type": "application/x-www-form-urlencoded",
        authorization: `${scheme}${encoded}`,
      });
      expect(response.status).toBe(200);
    },
  );

  it("lets oauth4webapi see the Basic challenge of a failed Basic authentication", async () => {
    const response = await clientCredentialsRequest(world, wrongSecret(c));
    const error = await oauth.processClientCredentialsResponse(world.as, c.client, response).catch((e) => e);
    expect(error).toBeInstanceOf(oauth.WWWAuthenticateChallengeError);
    expect(error).toMatchObject({
      status: 401,
      cause: [{ scheme: "basic", parameters: { realm: "token-manager", charset: "UTF-8" } }],
    });
  });
});

describe("malformed bodies (never a 5xx, always an RFC error)", () => {
  const auth = () => ({ authorization: basicHeader(c.clientId, c.secret) });

  it.each(ENDPOINTS)("%s: a JSON body is invalid_request", async (path) => {
    const body = JSON.stringify({ grant_type: "client_credentials", token: "x" });
    const response = await postRaw(t, path, body, { "content-type": "application/json", ...auth() });
    expect(await wire(response)).toEqual(NOT_A_FORM);
  });

  it.each(ENDPOINTS)("%s: broken JSON is invalid_request", async (path) => {
    const response = await postRaw(t, path, '{"grant_type":', {
      "content-type": "application/json",
      ...auth(),
    });
    expect(await wire(response)).toEqual(MALFORMED);
  });

  it.each(ENDPOINTS)("%s: a text/plain body is invalid_request", async (path) => {
    const response = await postRaw(t, path, VALID_FORM[path], { "content-type": "text/plain", ...auth() });
    expect(await wire(response)).toEqual(NOT_A_FORM);
  });

  it.each(ENDPOINTS)("%s: an application/xml body is invalid_request", async (path) => {
    const response = await postRaw(t, path, "<grant_type>client_credentials</grant_type>", {
      "content-type": "application/xml",
      ...auth(),
    });
    expect(await wire(response)).toEqual(MALFORMED);
  });

  it.each(ENDPOINTS)("%s: no body at all is invalid_request", async (path) => {
    expect(await wire(await postRaw(t, path, undefined, auth()))).toEqual(NOT_A_FORM);
  });

  it.each(ENDPOINTS)("%s: non-UTF-8 bytes are invalid_request (RFC 6749 Appendix B)", async (path) => {
    const body = Buffer.concat([Buffer.from(`${VALID_FORM[path]}&scope=`), Buffer.from([0xff, 0xfe, 0x41])]);
    const response = await postRaw(t, path, body, {
      "content-type": "application/x-www-form-urlencoded",
      ...auth(),
    });
    expect(await wire(response)).toEqual(
      oauthError(400, "invalid_request", "the request body is not valid UTF-8"),
    );
  });

  const BAD_ESCAPE = "the request body is not valid percent-encoded UTF-8";
  const CONTROL = "the request body holds a control character";
  it.each(
    ENDPOINTS.flatMap((path) => [
      [path, "percent-encoded non-UTF-8", "scope=%FF%FE", BAD_ESCAPE],
      [path, "a percent-encoded truncated UTF-8 sequence", "scope=%C3", BAD_ESCAPE],
      [path, "a broken escape", "scope=%zz", BAD_ESCAPE],
      // RFC 6749 Appendix A: no parameter holds a control character.
      [path, "a percent-encoded NUL", "scope=read%00", CONTROL],
      [path, "a raw control character", "scope=read\u0001", CONTROL],
      [path, "a line feed", "scope=read%0Awrite", CONTROL],
      [path, "a control character in a name", "sco%00pe=read", CONTROL],
    ]),
  )("%s: %s is invalid_request, not a replacement character", async (path, _name, extra, description) => {
    const response = await postForm(t, path, c, `${VALID_FORM[path]}&${extra}`);
    expect(await wire(response)).toEqual(oauthError(400, "invalid_request", description));
  });

  it("refuses a NUL in a password grant's username before it reaches the database", async () => {
    const before = t.logs.length;
    const response = await postForm(t, "/token", c, "grant_type=password&username=alice%00&password=x");
    expect(await wire(response)).toEqual(
      oauthError(400, "invalid_request", "the request body holds a control character"),
    );
    expect(t.logs.slice(before).join("")).not.toContain('"level":50');
  });

  it("decodes + as a space and percent-encoded UTF-8 in form values", async () => {
    const response = await postForm(t, "/token", c, "grant_type=client_credentials&scope=write+%72ead");
    expect(await wire(response)).toMatchObject({ status: 200, body: { scope: "read write" } });
  });

  it("accepts a form content type with a charset parameter", async () => {
    const response = await postRaw(t, "/token", "grant_type=client_credentials", {
      "content-type": "application/x-www-form-urlencoded; charset=UTF-8",
      ...auth(),
    });
    expect(response.status).toBe(200);
  });
});

describe("bodies that never arrive whole", () => {
  /** Sends `raw` on a new connection, then (unless `keepOpen`) drops it; resolves with what came back. */
  function sendRaw(raw: string, keepOpen: boolean): Promise<string> {
    const { hostname, port } = new URL(t.url);
    return new Promise((resolve) => {
      let answer = "";
      const socket = connect(Number(port), hostname, () => {
        socket.write(raw);
        if (!keepOpen) setTimeout(() => socket.destroy(), 50);
      });
      socket.on("data", (chunk: Buffer) => {
        answer += chunk.toString();
      });
      socket.on("close", () => resolve(answer));
      socket.on("error", () => resolve(answer));
      if (keepOpen) setTimeout(() => socket.destroy(), 500);
    });
  }

  const chunked = (path: string) =>
    `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n`;

  it.each(ENDPOINTS)(
    "%s: a client that goes away mid-body is not a server error, and logs none",
    async (path) => {
      const before = t.logs.length;
      await sendRaw(`${chunked(path)}5\r\ntoken`, false);
      await sleep(100);
      const logged = t.logs.slice(before).join("");
      expect(logged).not.toContain('"level":50');
      expect(logged).not.toContain("oauth endpoint failed");
    },
  );

  it.each(ENDPOINTS)("%s: a broken chunk is a 400, and logs no error", async (path) => {
    const before = t.logs.length;
    const answer = await sendRaw(`${chunked(path)}zz\r\n`, true);
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    await sleep(100);
    expect(t.logs.slice(before).join("")).not.toContain('"level":50');
  });
});

describe("oversized bodies (HTTP_BODY_LIMIT)", () => {
  let small: TestApp;
  beforeAll(async () => {
    small = await startOAuthApp({ HTTP_BODY_LIMIT: "1024" });
  });
  afterAll(() => small.stop());

  it.each(ENDPOINTS)("%s: a body over the limit is 413 invalid_request", async (path) => {
    const form = `${VALID_FORM[path]}&padding=${"x".repeat(2048)}`;
    expect(await wire(await postForm(small, path, null, form))).toEqual(
      oauthError(413, "invalid_request", "the request body is larger than 1024 bytes"),
    );
  });

  it("reads a body just under the limit (and then asks for client authentication)", async () => {
    const form = `grant_type=client_credentials&padding=${"x".repeat(900)}`;
    expect(await wire(await postForm(small, "/token", null, form))).toEqual(INVALID_CLIENT);
  });
});
