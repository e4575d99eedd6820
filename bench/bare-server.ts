/**
 * Benchmark child: a baseline of the gateway suite, answering every request with a fixed 200.
 * BENCH_BARE=node: a bare node:http server with an empty body (the reference /validate is
 * measured against); BENCH_BARE=fastify: Fastify with one route and no logger (what the framework
 * alone reaches); BENCH_BARE=introspection: a bare node:http server that reads each request's body
 * to its end, then answers BENCH_BARE_BODY as JSON with the headers of our introspection answer
 * (about what a Node server can serve of that request and answer: a reference, see
 * gateway-suite.ts).
 * Speaks the harness IPC protocol ("ready", "stop").
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { wireOf } from "../src/oauth/call.js";
import { serveAsChild } from "./child-server.js";

async function start(): Promise<Server> {
  if (process.env.BENCH_BARE === "fastify") {
    const { default: Fastify } = await import("fastify");
    const app = Fastify({ logger: false });
    app.all("/*", (_request, reply) => {
      reply.code(200).send();
    });
    await app.listen({ host: "127.0.0.1", port: 0 });
    return app.server;
  }
  const server =
    process.env.BENCH_BARE === "introspection"
      ? createServer(fixedAnswer(process.env.BENCH_BARE_BODY ?? "{}"))
      : createServer((_request, response) => {
          response.writeHead(200, { "content-length": "0" });
          response.end();
        });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

/**
 * Reads the body (discarding it), then writes `body` with the headers our OAuth endpoints write
 * (the same `wireOf` makes them), as the fast path writes an answer.
 */
function fixedAnswer(body: string) {
  const headers = {
    ...wireOf({ status: 200, body: {} }).headers,
    "content-length": String(Buffer.byteLength(body)),
  };
  return (request: IncomingMessage, response: ServerResponse) => {
    request.on("data", () => {});
    request.on("end", () => {
      response.writeHead(200, headers);
      response.end(body);
    });
  };
}

const server = await start();
const { port } = server.address() as AddressInfo;

serveAsChild(server, `http://127.0.0.1:${port}`, "a bare server");
