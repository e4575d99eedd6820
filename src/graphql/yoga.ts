import { useDisableIntrospection } from "@envelop/disable-introspection";
import { EnvelopArmorPlugin } from "@escape.tech/graphql-armor";
import { useCSRFPrevention } from "@graphql-yoga/plugin-csrf-prevention";
import type { GraphQLError, ValidationContext } from "graphql";
import { createYoga, maskError, type Plugin } from "graphql-yoga";
import type { Deps } from "../domain/deps.js";
import { createContext, type GraphQLContext } from "./context.js";
import { useInputGuard } from "./input-guard.js";
import { schema } from "./schema/index.js";
import { useWebSocketSubscriptionsOnly } from "./websocket-subscriptions.js";

/** What the host passes into Yoga: HTTP carries a request; graphql-ws carries connectionParams. */
export interface ServerContext {
  readonly connectionParams?: Readonly<Record<string, unknown>>;
  /** The client address (HTTP: Fastify's request.ip; WebSocket: the socket's remote address). */
  readonly source?: string;
  readonly closeSocket?: (code: number, reason: string) => void;
}

export const GRAPHQL_PATH = "/graphql";

/**
 * Armor's limits report as ordinary validation errors (so HTTP answers 400 per GraphQL over
 * HTTP) instead of throwing out of validation.
 */
const asValidationError = {
  propagateOnRejection: false,
  onReject: [(context: ValidationContext | null, error: GraphQLError) => context?.reportError(error)],
};

/**
 * The GraphQL server. Every protection is an envelop plugin, so it holds for HTTP and for
 * graphql-ws alike (both execute through `getEnveloped`).
 */
export function createGraphQLServer(deps: Deps) {
  const { graphql, env } = deps.config;
  const plugins: Plugin[] = [
    EnvelopArmorPlugin({
      maxDepth: { n: graphql.maxDepth, ...asValidationError },
      maxAliases: { n: graphql.maxAliases, ...asValidationError },
      costLimit: { maxCost: graphql.maxCost, ...asValidationError },
      maxTokens: { n: graphql.maxTokens },
      maxDirectives: { n: 20, ...asValidationError },
      blockFieldSuggestion: { enabled: !graphql.introspection },
    }) as Plugin,
    // Browsers send "simple" requests (GET, form posts) without a preflight: require a header.
    useCSRFPrevention({ requestHeaders: ["x-graphql-yoga-csrf", "apollo-require-preflight"] }),
    useInputGuard(),
    useWebSocketSubscriptionsOnly(),
  ];
  if (!graphql.introspection) plugins.push(useDisableIntrospection() as Plugin);
  return createYoga<ServerContext, GraphQLContext>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    // GraphiQL runs subscriptions over WebSocket too (over HTTP they are refused).
    graphiql: env !== "production" && graphql.introspection ? { subscriptionsProtocol: "WS" } : false,
    landingPage: false,
    logging: false,
    // Typed errors are data; anything thrown is masked ("Unexpected error.") and logged here.
    maskedErrors: {
      maskError: (error, message) => {
        // Never the development variant: no stack trace or original message on the wire.
        const masked = maskError(error, message, false);
        if (masked !== error) {
          deps.log.error(
            { err: (error as { originalError?: unknown }).originalError ?? error },
            "unexpected error",
          );
        }
        return masked;
      },
    },
    plugins,
    context: async (initial) => {
      const fromSocket = initial.connectionParams?.authorization;
      const fromHeader = (initial as { request?: Request }).request?.headers.get("authorization");
      return createContext(
        deps,
        initial.connectionParams ? fromSocket : fromHeader,
        initial.source ?? "unknown",
      );
    },
  });
}
