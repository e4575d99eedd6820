import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type ExecutionArgs, type ExecutionResult, GraphQLError } from "graphql";
import { useServer } from "graphql-ws/use/ws";
import { maskError } from "graphql-yoga";
import { WebSocketServer } from "ws";
import type { Deps } from "../domain/deps.js";
import { clientAddressOf } from "../http/client-address.js";
import { authenticate } from "./context.js";
import type { Outlet } from "./direct-delivery.js";
import { unstorableInputError } from "./input-guard.js";
import { SharedSubscriptions } from "./shared-execution.js";
import type { createGraphQLServer } from "./yoga.js";
import { GRAPHQL_PATH } from "./yoga.js";

type Yoga = ReturnType<typeof createGraphQLServer>;
/** Yoga's enveloped execute/subscribe, carried to graphql-ws through rootValue. */
interface EnvelopedRoot {
  execute(args: ExecutionArgs): never;
  subscribe(args: ExecutionArgs): never;
  /** Set for subscriptions: the selection their event results are shared by. */
  selectionKey?: string;
  /** Set for subscriptions: where their results are written. */
  outlet?: Outlet;
}

/**
 * graphql-ws (`graphql-transport-ws`) on the same path as HTTP GraphQL. Operations run through
 * Yoga's envelop (`getEnveloped`), so the same context factory, limits and masking apply.
 */
export function createGraphQLWebSocketServer(deps: Deps, yoga: Yoga) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: deps.config.limits.wsPayload });
  const addressOf = clientAddressOf(deps.config.trustProxy);
  const shared = new SharedSubscriptions();
  const maskResult = (result: ExecutionResult): ExecutionResult =>
    result.errors?.length
      ? {
          ...result,
          errors: result.errors.map((error) => {
            const masked = maskError(error, "Unexpected error.", false);
            if (masked !== error) deps.log.error({ err: error.originalError ?? error }, "unexpected error");
            return masked as GraphQLError;
          }),
        }
      : result;
  const server = useServer(
    {
      execute: (args) => (args.rootValue as EnvelopedRoot).execute(args),
      subscribe: (args) => {
        const root = args.rootValue as EnvelopedRoot;
        return root.selectionKey === undefined
          ? root.subscribe(args)
          : (shared.subscribe(args, maskResult, root.selectionKey, root.outlet) as never);
      },
      // Messages of failures never go out in a close reason, whatever NODE_ENV says (graphql-ws
      // sends them outside production): they may name tables, hosts or values. (graphql-ws also
      // stops warning about clients of the deprecated subscriptions-transport-ws protocol.)
      isProd: true,
      // Only authenticated connections (log in over HTTP first): anything else is refused (4403).
      onConnect: (ctx) =>
        internal(
          deps,
          async () => (await authenticate(deps, ctx.connectionParams?.authorization)).viewer !== null,
        ),
      onSubscribe: (ctx, id, payload) =>
        internal(deps, async () => {
          // graphql-ws has already counted this operation in: more than the limit is one too many.
          if (Object.keys(ctx.subscriptions).length > deps.config.limits.wsOperations) {
            return [
              new GraphQLError(
                `at most ${deps.config.limits.wsOperations} operations may be in progress at once on one connection`,
                { extensions: { code: "TOO_MANY_OPERATIONS" } },
              ),
            ];
          }
          const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
            connectionParams: ctx.connectionParams ?? {},
            source: addressOf(ctx.extra.request) || "unknown",
            closeSocket: (code: number, reason: string) => ctx.extra.socket.close(code, reason),
          });
          let document: ReturnType<typeof parse>;
          try {
            document = parse(payload.query);
          } catch (error) {
            return [error as never];
          }
          // First: the shared subscriptions' key serialises the variables, and they do not go
          // through the enveloped subscribe, whose hook checks HTTP's operations.
          const unstorable = unstorableInputError(document, payload.variables);
          if (unstorable) return [unstorable];
          const args = {
            schema,
            operationName: payload.operationName,
            document,
            variableValues: payload.variables,
            contextValue: await contextFactory(),
            rootValue: {
              execute,
              subscribe,
              ...(SharedSubscriptions.isSubscription(document, payload.operationName)
                ? {
                    selectionKey: JSON.stringify([
                      payload.query,
                      payload.operationName ?? null,
                      payload.variables ?? null,
                    ]),
                    outlet: {
                      socket: ctx.extra.socket,
                      connection: ctx.extra.request.socket,
                      id,
                      sendBufferLimit: deps.config.eventSendBufferLimit,
                      slowGraceMs: deps.config.eventSlowConsumerGraceMs,
                    },
                  }
                : {}),
            } as EnvelopedRoot,
          };
          const errors = validate(args.schema, args.document);
          if (errors.length) return errors;
          return args;
        }),
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

/**
 * Runs a graphql-ws hook; an unexpected failure is logged here, in the service's log, and
 * graphql-ws gets a bare error: it closes the socket with 4500 "Internal server error" and prints
 * the error it got, which then says nothing of the cause.
 */
async function internal<T>(deps: Deps, hook: () => Promise<T>): Promise<T> {
  try {
    return await hook();
  } catch (error) {
    // From Yoga's context factory this is already masked ("Unexpected error."); Yoga's maskError
    // hook (yoga.ts) logged the cause as "unexpected error".
    deps.log.error({ err: error }, "graphql-ws hook failed");
    throw new Error("internal error (logged)");
  }
}
