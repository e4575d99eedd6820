import type { IncomingMessage, ServerResponse } from "node:http";
import type { FastifyInstance } from "fastify";

/** Answers a request before Fastify (true), or leaves it to Fastify (false). Never throws. */
export type FastPath = (request: IncomingMessage, response: ServerResponse) => boolean;

/**
 * The hot endpoints served by Node's HTTP server ahead of Fastify (GET /validate on a cached token,
 * the OAuth form posts). While the server closes, everything goes to Fastify, which answers 503
 * with Connection: close.
 */
export function createFastPaths(paths: readonly FastPath[]) {
  let closing = false;
  return {
    answer(request: IncomingMessage, response: ServerResponse): boolean {
      if (closing) return false;
      for (const path of paths) if (path(request, response)) return true;
      return false;
    },
    register(app: FastifyInstance) {
      app.addHook("preClose", async () => {
        closing = true;
      });
    },
  };
}
