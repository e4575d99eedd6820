/**
 * Benchmark child: a baseline of the gateway suite, answering every request with a fixed 200 and
 * an empty body. BENCH_BARE=node: a bare node:http server (the reference /validate is measured
 * against); BENCH_BARE=fastify: Fastify with one route and no logger (what the framework alone
 * reaches). Speaks the harness IPC protocol ("ready", "stop").
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
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
  const server = createServer((_request, response) => {
    response.writeHead(200, { "content-length": "0" });
    response.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

const server = await start();
const { port } = server.address() as AddressInfo;

serveAsChild(server, `http://127.0.0.1:${port}`, "a bare server");
