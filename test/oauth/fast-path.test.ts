import { describe, expect, it } from "vitest";
import { rawRequest } from "../support/gateway.js";
import { clientCredentialsRequest, introspect, useOAuthWorld } from "../support/oauth.js";

/**
 * The OAuth form posts are answered before Fastify when the request is plain (a sized form body);
 * anything else goes through Fastify. Both must give the same answers.
 */
const f = useOAuthWorld();

const FORM = "application/x-www-form-urlencoded";
const basic = () =>
  `Basic ${Buffer.from(`${encodeURIComponent(f.c.clientId)}:${encodeURIComponent(f.c.secret)}`).toString("base64")}`;

/** Status, headers (but the date and the connection's) and body text of one raw request. */
async function post(path: string, body: string, headers: Record<string, string>) {
  const response = await rawRequest(f.t.url, path, { method: "POST", headers, body });
  const skip = new Set(["date", "connection", "keep-alive", "content-length", "transfer-encoding"]);
  return {
    status: response.status,
    headers: Object.fromEntries([...response.headers].filter(([name]) => !skip.has(name))),
    body: await response.text(),
  };
}
const sized = (body: string, type = FORM) => ({
  authorization: basic(),
  "content-type": type,
  "content-length": String(Buffer.byteLength(body)),
});
const chunked = (type = FORM) => ({
  authorization: basic(),
  "content-type": type,
  "transfer-encoding": "chunked",
});

describe("the same answers with and without the framework", () => {
  it("issues a token for a sized body and for a chunked one (Fastify's), with the same headers", async () => {
    const body = "grant_type=client_credentials";
    const fast = await post("/token", body, sized(body));
    const framework = await post("/token", body, chunked());
    expect(fast.status).toBe(200);
    expect(framework.status).toBe(200);
    expect(fast.headers).toEqual(framework.headers);
    expect(fast.headers).toEqual({
      "cache-control": "no-store",
      pragma: "no-cache",
      "content-type": "application/json; charset=utf-8",
    });
    expect(Object.keys(JSON.parse(fast.body))).toEqual(Object.keys(JSON.parse(framework.body)));
  });

  it.each([
    ["a body that is not UTF-8", Buffer.from([0x67, 0x3d, 0xff]).toString("latin1")],
    ["a repeated parameter", "grant_type=client_credentials&grant_type=client_credentials"],
    ["a missing grant type", "scope=read"],
    ["an unsupported grant type", "grant_type=urn:nope"],
    ["a scope outside the key", "grant_type=client_credentials&scope=admin"],
  ])("answers %s with the same error either way", async (_what, body) => {
    const fast = await post("/token", body, sized(body));
    const framework = await post("/token", body, chunked());
    expect(fast.status).toBeGreaterThanOrEqual(400);
    expect(fast).toEqual(framework);
  });

  it("answers a wrong secret with the same 401 and Basic challenge either way", async () => {
    const body = "grant_type=client_credentials";
    const wrong = `Basic ${Buffer.from(`${f.c.clientId}:tmcs_nope`).toString("base64")}`;
    const fast = await post("/token", body, { ...sized(body), authorization: wrong });
    const framework = await post("/token", body, { ...chunked(), authorization: wrong });
    expect(fast.status).toBe(401);
    expect(fast).toEqual(framework);
    expect(fast.headers["www-authenticate"]).toBe('Basic realm="token-manager", charset="UTF-8"');
  });

  it("introspects and revokes on the fast path, as the client library sees it", async () => {
    const response = await clientCredentialsRequest(f.world, f.c);
    const { access_token: token } = (await response.json()) as { access_token: string };
    expect(await introspect(f.world, f.c, token)).toMatchObject({ active: true, client_id: f.c.clientId });
    const body = `token=${encodeURIComponent(token)}`;
    const revoked = await post("/revoke", body, sized(body));
    expect(revoked).toEqual({
      status: 200,
      headers: { "cache-control": "no-store", pragma: "no-cache" },
      body: "",
    });
    expect(await introspect(f.world, f.c, token)).toEqual({ active: false });
  });
});

describe("what the fast path leaves to Fastify", () => {
  it("a content type with a charset parameter is still a form", async () => {
    const body = "grant_type=client_credentials";
    expect((await post("/token", body, sized(body, `${FORM}; charset=UTF-8`))).status).toBe(200);
  });

  it("a JSON body is invalid_request, a query string is served like the bare path", async () => {
    const json = JSON.stringify({ grant_type: "client_credentials" });
    const refused = await post("/token", json, sized(json, "application/json"));
    expect(refused.status).toBe(400);
    expect(JSON.parse(refused.body).error).toBe("invalid_request");
    const body = "grant_type=client_credentials";
    expect((await post("/token?x=1", body, sized(body))).status).toBe(200);
  });

  it("a body over the limit is refused with 413 invalid_request, without being read into a token", async () => {
    const body = `grant_type=client_credentials&pad=${"x".repeat(200_000)}`;
    const refused = await post("/token", body, sized(body));
    expect(refused.status).toBe(413);
    expect(JSON.parse(refused.body).error).toBe("invalid_request");
  });
});

describe("request logs at LOG_LEVEL=info", () => {
  it("logs one line per fast-path request, with the path and status and no secret", async () => {
    const before = f.t.logs.length;
    const body = "grant_type=client_credentials";
    const answer = await post("/token", body, sized(body));
    const lines = f.t.logs
      .slice(before)
      .join("")
      .split("\n")
      .filter((l) => l.includes("request completed"))
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ req: { method: "POST", path: "/token" }, res: { statusCode: 200 } });
    const token = JSON.parse(answer.body).access_token as string;
    expect(f.t.logs.join("")).not.toContain(token.split("_")[2]);
    expect(f.t.logs.join("")).not.toContain(f.c.secret);
  });
});
