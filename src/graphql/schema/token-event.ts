import { GraphQLError } from "graphql";
import { TOKEN_EVENT_REASONS, TOKEN_EVENT_TYPES } from "../../db/schema/index.js";
import { DomainError, ValidationError } from "../../domain/errors.js";
import type { TokenEventRecord } from "../../domain/token-event.js";
import { listTokenEvents, streamTokenEvents } from "../../domain/token-event-stream.js";
import { requireViewer } from "../../domain/viewer.js";
import type { LiveStream, Sink } from "../../events/live-stream.js";
import { builder } from "../builder.js";
import { KeyTypeEnum } from "./enums.js";
import { SIGNED_IN } from "./error.js";
import { TokenKindEnum } from "./token.js";

/** Close code for a subscriber that fell too far behind (unsent bytes or queued events over their limits). */
export const SLOW_CONSUMER_CLOSE = 4429;

const TokenEventTypeEnum = builder.enumType("TokenEventType", { values: TOKEN_EVENT_TYPES });
const TokenEventReasonEnum = builder.enumType("TokenEventReason", { values: TOKEN_EVENT_REASONS });

const TokenSnapshot = builder.objectRef<TokenEventRecord>("TokenEventToken").implement({
  description: "The token as it was when the event happened.",
  fields: (t) => ({
    id: t.id({ resolve: (e) => e.tokenId as string }),
    kind: t.field({ type: TokenKindEnum, resolve: (e) => e.tokenKind as "APPLICATION" | "USER" }),
    keyType: t.field({ type: KeyTypeEnum, nullable: true, resolve: (e) => e.keyType }),
    applicationId: t.id({ nullable: true, resolve: (e) => e.applicationId }),
    userId: t.id({ nullable: true, resolve: (e) => e.userId }),
    scopes: t.stringList({ resolve: (e) => [...(e.scopes ?? [])] }),
    expiresAt: t.field({ type: "DateTime", nullable: true, resolve: (e) => e.expiresAt }),
  }),
});

const TokenEventRef = builder.objectRef<TokenEventRecord>("TokenEvent").implement({
  description: "One lifecycle change, in the order of the event log; `id` is the cursor.",
  fields: (t) => ({
    id: t.exposeID("id"),
    type: t.field({ type: TokenEventTypeEnum, resolve: (e) => e.type }),
    reason: t.field({ type: TokenEventReasonEnum, nullable: true, resolve: (e) => e.reason }),
    occurredAt: t.expose("occurredAt", { type: "DateTime" }),
    applicationId: t.id({ nullable: true, resolve: (e) => e.applicationId }),
    keyType: t.field({ type: KeyTypeEnum, nullable: true, resolve: (e) => e.keyType }),
    userId: t.id({ nullable: true, resolve: (e) => e.userId }),
    token: t.field({
      type: TokenSnapshot,
      nullable: true,
      description: "Null for key-level events (KEYS_GENERATED, SECRET_ROTATED, key VALIDITY_CHANGED).",
      resolve: (e) => (e.tokenId ? e : null),
    }),
  }),
});

const TokenEventFilter = builder.inputType("TokenEventFilter", {
  fields: (t) => ({
    types: t.field({ type: [TokenEventTypeEnum] }),
    applicationId: t.id(),
    userId: t.id(),
  }),
});

const TokenEventEdge = builder.objectRef<TokenEventRecord>("TokenEventEdge").implement({
  fields: (t) => ({
    cursor: t.exposeString("id"),
    node: t.field({ type: TokenEventRef, resolve: (e) => e }),
  }),
});

const PageInfo = builder.objectRef<{ hasNextPage: boolean; endCursor: string | null }>("PageInfo").implement({
  fields: (t) => ({
    hasNextPage: t.exposeBoolean("hasNextPage"),
    endCursor: t.exposeString("endCursor", { nullable: true }),
  }),
});

const TokenEventConnection = builder
  .objectRef<Awaited<ReturnType<typeof listTokenEvents>>>("TokenEventConnection")
  .implement({
    description: "Token events, newest first.",
    fields: (t) => ({
      edges: t.field({ type: [TokenEventEdge], resolve: (c) => c.nodes }),
      pageInfo: t.field({
        type: PageInfo,
        resolve: (c) => ({ hasNextPage: c.hasNextPage, endCursor: c.nodes.at(-1)?.id ?? null }),
      }),
    }),
  });

const filterArg = (
  filter:
    | { types?: string[] | null; applicationId?: string | number | null; userId?: string | number | null }
    | null
    | undefined,
) =>
  filter
    ? {
        types: filter.types as TokenEventRecord["type"][] | null | undefined,
        applicationId: filter.applicationId?.toString(),
        userId: filter.userId?.toString(),
      }
    : null;

builder.queryField("tokenEvents", (t) =>
  t.field({
    type: TokenEventConnection,
    description: "Event history, newest first: admins see all, others their own and their applications'.",
    errors: { types: SIGNED_IN },
    args: {
      filter: t.arg({ type: TokenEventFilter }),
      first: t.arg.int({ description: "Page size, 1 to 500 (default 50)." }),
      after: t.arg.string({ description: "Cursor: events older than this one." }),
    },
    resolve: (_root, args, ctx) =>
      listTokenEvents(ctx.deps, ctx.auth, {
        first: args.first,
        after: args.after,
        filter: filterArg(args.filter),
      }),
  }),
);

builder.subscriptionType({});
builder.subscriptionField("tokenEvents", (t) =>
  t.field({
    type: TokenEventRef,
    description:
      "Live token events. With `after`, every later event is replayed first, then the stream continues live with no gap or duplicate.",
    args: {
      after: t.arg.id({ description: "Replay events after this cursor (an event id) first." }),
      filter: t.arg({ type: TokenEventFilter }),
    },
    subscribe: (_root, args, ctx) => {
      try {
        requireViewer(ctx.auth);
      } catch (error) {
        throw exposed(error);
      }
      return new Delivering(
        streamTokenEvents(
          ctx.deps,
          ctx.deps.hub,
          ctx.auth,
          { after: args.after?.toString(), filter: filterArg(args.filter) },
          () => {
            ctx.deps.metrics.slowConsumers.inc();
            ctx.closeSocket?.(SLOW_CONSUMER_CLOSE, "slow consumer: too far behind");
          },
        ),
        // Observed per subscriber as its stream hands the event over (execution may be shared).
        (event) => ctx.deps.metrics.deliveryLag.observe((Date.now() - event.occurredAt.getTime()) / 1000),
      );
    },
    resolve: (event: TokenEventRecord) => event,
  }),
);

/**
 * A subscription has no payload to carry typed errors: an expected failure (a bad filter or
 * cursor, the session's token revoked or expired) ends the stream as a GraphQL error with its
 * stable code, which masking leaves alone; anything else stays masked.
 */
function exposed(error: unknown): unknown {
  if (!(error instanceof DomainError)) return error;
  return new GraphQLError(error.message, {
    extensions: { code: error.code, ...(error instanceof ValidationError ? { field: error.field } : {}) },
  });
}

/**
 * `source` with its domain errors exposed and `onEvent` called for each event it hands over
 * (through `next()` or to a sink); `return()` goes straight through (an async generator would
 * queue it behind a pending next()). A class: every idle subscription holds one.
 */
class Delivering<T> implements LiveStream<T> {
  constructor(
    private readonly source: LiveStream<T>,
    private readonly onEvent: (event: T) => void,
  ) {}

  next(): Promise<IteratorResult<T, undefined>> {
    return this.source.next().then((step) => {
      if (!step.done) this.onEvent(step.value);
      return step;
    }, rethrow);
  }

  deliverTo(sink: Sink<T>): Promise<void> {
    return this.source
      .deliverTo((event) => {
        this.onEvent(event);
        return sink(event);
      })
      .catch(rethrow);
  }

  return(): Promise<IteratorResult<T, undefined>> {
    return this.source.return(undefined);
  }

  throw(error: unknown): Promise<IteratorResult<T, undefined>> {
    return this.source.throw(error).catch(rethrow);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

function rethrow(error: unknown): never {
  throw exposed(error);
}
