import { GraphQLError } from "graphql";
import type { Plugin } from "graphql-yoga";

/** Whether an operation came over graphql-ws: its context carries connectionParams (ws.ts). */
export const overWebSocket = (context: unknown) =>
  (context as { connectionParams?: unknown }).connectionParams !== undefined;

/**
 * Subscriptions are served over WebSocket only (graphql-transport-ws on the same path), where
 * every subscriber shares one execution per event and a slow consumer is cut off (its send buffer
 * is bounded, see shared-execution.ts). Yoga would also serve them over HTTP as Server-Sent
 * Events, one execution per subscriber and without those bounds: a subscription over HTTP is
 * refused with 400 instead. graphql-ws's own subscriptions carry connectionParams in their
 * context (ws.ts); HTTP requests never do.
 */
export function useWebSocketSubscriptionsOnly(): Plugin {
  return {
    onSubscribe({ args }) {
      if (overWebSocket(args.contextValue)) return;
      throw new GraphQLError(
        "subscriptions are served over WebSocket (graphql-transport-ws) at this path, not over HTTP",
        { extensions: { code: "BAD_REQUEST", http: { status: 400 } } },
      );
    },
  };
}
