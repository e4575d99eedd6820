import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { ExecutionArgs } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { WebSocketServer } from "ws";
import type { Deps } from "../domain/deps.js";
import { authenticate } from "./context.js";
import type { createGraphQLServer } from "./yoga.js";
import { GRAPHQL_PATH } from "./yoga.js";

type Yoga = ReturnType<typeof createGraphQLServer>;
/** Yoga's enveloped execute/subscribe, carried to graphql-ws through rootValue. */
interface EnvelopedRoot {
  execute(args: ExecutionArgs): never;
  subscribe(args: ExecutionArgs): never;
}

/**
 * graphql-ws (`graphql-transport-ws`) on the same path as HTTP GraphQL. Operations run through
 * Yoga's envelop (`getEnveloped`), so the same context factory, limits and masking apply.
 */
export function createGraphQLWebSocketServer(deps: Deps, yoga: Yoga) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: deps.config.limits.wsPayload });
  const server = useServer(
    {
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args),
      subscribe: (args) => (args.rootValue as EnvelopedRoot).subscribe(args),
      // Only authenticated connections (log in over HTTP first): anything else is refused (4403).
      onConnect: async (ctx) =>
        (await authenticate(deps, ctx.connectionParams?.authorization)).viewer !== null,
      onSubscribe: async (ctx, _id, payload) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          connectionParams: ctx.connectionParams ?? {},
          source: ctx.extra.request.socket.remoteAddress ?? "unknown",
          closeSocket: (code: number, reason: string) => ctx.extra.socket.close(code, reason),
        });
        let document: ReturnType<typeof parse>;
        try {
          document = parse(payload.query);
        } catch (error) {
          return [error as never];
        }
        const args = {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length) return errors;
        return args;
      },
    },
    wss,
  );

  return {
    /** Routes HTTP upgrades on the GraphQL path to graphql-ws; anything else is refused. */
    handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer) {
      const path = (request.url ?? "").split("?")[0];
      if (path !== GRAPHQL_PATH) {
        socket.write("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
        socket.destroy();
        return;
      }
      wss.handleUpgrade(request, socket, head, (ws) => wss.emit("connection", ws, request));
    },
    async close() {
      for (const client of wss.clients) client.close(1001, "server shutting down");
      await server.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
