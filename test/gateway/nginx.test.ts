import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server } from "node:http";
import { type AddressInfo, connect, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import {
  createGatewayWorld,
  freshToken,
  type GatewayKey,
  type GatewayWorld,
  newKey,
  REALM,
  rawRequest,
} from "../support/gateway.js";
import { revokeToken, sleep } from "../support/keys.js";

/**
 * End to end: a real nginx running examples/nginx/token-manager.conf (the file itself, with its
 * three addresses pointed at this test) in front of a small API that echoes what reached it.
 */
const NGINX = "/usr/sbin/nginx";
const hasNginx = existsSync(NGINX);
if (!hasNginx) {
  console.warn(`test/gateway/nginx.test.ts skipped: ${NGINX} is absent (Debian: apt-get install nginx)`);
}

const EXAMPLE = new URL("../../examples/nginx/token-manager.conf", import.meta.url);

/** What the API behind nginx received, as it echoes it. */
interface Received {
  method: string;
  url: string;
  authorization: boolean;
  headers: Record<string, string>;
  body: string;
}

let t: TestApp;
let world: GatewayWorld;
/** Restricted to shop.example.com, scopes read and write. */
let key: GatewayKey;
/** Any domain, scope read only. */
let reader: GatewayKey;
let api: Server;
const received: Received[] = [];
let nginx: ChildProcess | undefined;
let nginxLog = "";
let dir: string;
let gateway: string;

beforeAll(async () => {
  if (!hasNginx) return;
  t = await startTestApp();
  world = await createGatewayWorld(t);
  key = await newKey(world, { allowedDomains: ["shop.example.com"] });
  reader = await newKey(world, { scopes: ["read"] });
  api = await startEchoApi();
  dir = await mkdtemp(join(tmpdir(), "tm-nginx-"));
  // nginx workers drop root privileges: they must be able to reach the temp paths.
  await chmod(dir, 0o755);
  const port = await freePort();
  gateway = `http://127.0.0.1:${port}`;
  const servicePort = new URL(t.url).port;
  await writeFile(join(dir, "token-manager.conf"), await renderExample(servicePort, portOf(api), port));
  await writeFile(join(dir, "nginx.conf"), mainConf(dir));
  nginx = spawn(
    NGINX,
    [
      "-e",
      "stderr",
      "-p",
      dir,
      "-c",
      join(dir, "nginx.conf"),
      "-g",
      `daemon off; pid ${dir}/nginx.pid; error_log stderr;`,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  nginx.stderr!.on("data", (chunk: Buffer) => {
    nginxLog += chunk.toString();
  });
  await waitForPort(port, nginx);
});

afterAll(async () => {
  if (nginx && nginx.exitCode === null) {
    const exited = new Promise((resolve) => nginx!.once("exit", resolve));
    nginx.kill("SIGQUIT");
    await exited;
  }
  await new Promise((resolve) => (api ? api.close(resolve) : resolve(undefined)));
  await t?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The example with its upstreams and listen address pointed at this test; each must match once. */
async function renderExample(servicePort: string, apiPort: number, listenPort: number): Promise<string> {
  let conf = await readFile(EXAMPLE, "utf8");
  const swaps: [string, string][] = [
    ["server 127.0.0.1:4000;", `server 127.0.0.1:${servicePort};`],
    ["server 127.0.0.1:8080;", `server 127.0.0.1:${apiPort};`],
    ["listen 8000;", `listen 127.0.0.1:${listenPort};`],
  ];
  for (const [from, to] of swaps) {
    expect(conf.split(from), `examples/nginx/token-manager.conf must contain "${from}" once`).toHaveLength(2);
    conf = conf.replace(from, to);
  }
  return conf;
}

/** The main configuration a package would provide, with every path inside `root` (no root needed). */
const mainConf = (root: string) => `
worker_processes 1;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path ${root}/client_body;
    proxy_temp_path ${root}/proxy;
    fastcgi_temp_path ${root}/fastcgi;
    uwsgi_temp_path ${root}/uwsgi;
    scgi_temp_path ${root}/scgi;
    include ${root}/token-manager.conf;
}
`;

/** The API behind nginx: answers 200 with what reached it. */
function startEchoApi(): Promise<Server> {
  const server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (name.startsWith("x-auth-") && typeof value === "string") headers[name] = value;
      }
      const seen: Received = {
        method: req.method ?? "",
        url: req.url ?? "",
        authorization: req.headers.authorization !== undefined,
        headers,
        body: Buffer.concat(chunks).toString(),
      };
      received.push(seen);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(seen));
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const portOf = (server: Server) => (server.address() as AddressInfo).port;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}):\n${nginxLog}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nginx did not listen within ${timeoutMs} ms:\n${nginxLog}`);
    await sleep(20);
  }
}

/** A call through nginx (the request line sent as is), with the API's JSON echo parsed. */
async function call(
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; challenge: string | null; body: any }> {
  const response = await rawRequest(gateway, path, options);
  const text = await response.text();
  const json = response.headers.get("content-type")?.startsWith("application/json");
  return {
    status: response.status,
    challenge: response.headers.get("www-authenticate"),
    body: json ? JSON.parse(text) : text,
  };
}

const bearer = (token: string, extra: Record<string, string> = {}) => ({
  authorization: `Bearer ${token}`,
  ...extra,
});

describe("nginx auth_request with examples/nginx/token-manager.conf", () => {
  it.skipIf(!hasNginx)(
    "passes an allowed call to the API with the caller's identity, and without the Authorization header",
    async () => {
      const url = `${world.shop.prefix}/items?page=2`;
      const response = await call(url, {
        headers: bearer(key.token, {
          domain: "shop.example.com",
          // Forged identity headers: nginx must replace or drop them.
          "x-auth-subject": "someone-else",
          "x-auth-username": "admin",
        }),
      });
      expect({ status: response.status, body: response.body }).toEqual({
        status: 200,
        body: {
          method: "GET",
          url,
          authorization: false,
          headers: {
            "x-auth-subject": key.consumerKey,
            "x-auth-client-id": key.consumerKey,
            "x-auth-token-kind": "APPLICATION",
            "x-auth-application-id": key.applicationId,
            "x-auth-key-type": "PRODUCTION",
            "x-auth-scopes": "read write",
          },
          body: "",
        },
      });
    },
  );

  it.skipIf(!hasNginx)("checks the original method, and passes the body to the API only", async () => {
    const url = `${world.shop.prefix}/items`;
    const allowed = await call(url, {
      method: "POST",
      headers: bearer(key.token, { domain: "shop.example.com", "content-type": "text/plain" }),
      body: "a new item",
    });
    expect(allowed.status).toBe(200);
    expect(allowed.body).toMatchObject({ method: "POST", url, body: "a new item" });

    const before = received.length;
    const refused = await call(url, { method: "POST", headers: bearer(reader.token), body: "a new item" });
    expect(refused.status).toBe(403);
    expect(refused.challenge).toBe(`${REALM}, error="insufficient_scope", scope="write"`);
    expect(received.length).toBe(before);
  });

  it.skipIf(!hasNginx)(
    "answers 403 for a domain the key does not allow, and the API never sees the call",
    async () => {
      const before = received.length;
      const url = `${world.shop.prefix}/items`;
      for (const headers of [bearer(key.token, { domain: "evil.example.org" }), bearer(key.token)]) {
        const refused = await call(url, { headers });
        expect({ status: refused.status, challenge: refused.challenge }).toEqual({
          status: 403,
          challenge: null,
        });
      }
      expect(received.length).toBe(before);
    },
  );

  it.skipIf(!hasNginx)("answers 401 with the bearer challenge once the token is revoked", async () => {
    const token = await freshToken(t, key);
    const url = `${world.shop.prefix}/items`;
    expect((await call(url, { headers: bearer(token, { domain: "shop.example.com" }) })).status).toBe(200);
    expect((await revokeToken(t, world.owner.token, token)).__typename).toBe("RevokeTokenPayload");
    const before = received.length;
    const refused = await call(url, { headers: bearer(token, { domain: "shop.example.com" }) });
    expect(refused.status).toBe(401);
    expect(refused.challenge).toBe(
      `${REALM}, error="invalid_token", error_description="the token is revoked"`,
    );
    expect(received.length).toBe(before);
  });

  it.skipIf(!hasNginx)("answers 401 with the bare realm challenge when no token is sent", async () => {
    const refused = await call(`${world.shop.prefix}/items`);
    expect(refused.status).toBe(401);
    expect(refused.challenge).toBe(REALM);
  });

  it.skipIf(!hasNginx)(
    "refuses paths with dot or empty segments (however encoded) or backslashes, which the API could read as another API's",
    async () => {
      // nginx hands the API the raw URI. But for the first, each of these is the shop API's
      // /items/… to some reading (URL parsing; %2F, %5C or a backslash as a separator; Tomcat's
      // `;parameters` dropped), and another path to an API that reads it another way.
      const shop = world.shop.prefix;
      const other = world.other.prefix;
      const before = received.length;
      for (const path of [
        `${shop}/../..${other}/anything`,
        `${other}/../..${shop}/items`,
        `${other}/%2e%2E/%2E%2e${shop}/items`,
        `//internal${shop}/items`,
        `${shop}/items/..%2F..%2F..${other.replaceAll("/", "%2F")}%2Fitems`,
        `${shop}/items/..%5C..%5C..${other.replaceAll("/", "%5C")}%5Citems`,
        `${other}\\..\\..${shop}/items`,
        `${other}/..;/..;${shop}/items`,
      ]) {
        const refused = await call(path, { headers: bearer(reader.token) });
        expect({ path, status: refused.status }).toEqual({ path, status: 403 });
      }
      expect(received.length).toBe(before);
    },
  );
});
