import {
  createSourceEventStream,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  execute as executeOperation,
  Kind,
  OperationTypeNode,
} from "graphql";
import { LRUCache } from "lru-cache";
import { isLiveStream } from "../events/live-stream.js";
import { DirectDelivery, type Outlet } from "./direct-delivery.js";

/** Masks unexpected resolver errors the way the HTTP path does. */
type MaskErrors = (result: ExecutionResult) => ExecutionResult;

/** One event's result for one selection. */
export interface Shared {
  readonly result: ExecutionResult;
  /** The last graphql-ws `next` message built from it (bytes), and for which subscription id. */
  frameId?: string;
  frame?: Buffer;
  /** The `payload` of its `next` messages, as JSON, once one was sent. */
  payload?: string;
}

/** One selection's cache of its latest result, for the run of subscribers an event goes to. */
interface Selection {
  readonly key: string;
  eventId?: string;
  latest?: Shared | Promise<Shared>;
}

/**
 * Subscriptions that many clients hold with the same selection (the admin console's
 * tokenEvents) would otherwise execute every event once per subscriber. Here each subscriber's
 * own source stream still decides *which* events it gets (visibility, filters, session checks),
 * but the result for one event and one selection (document, operation, variables) is executed
 * and serialised once and shared by every subscriber that receives it. Over graphql-ws, a source
 * that can push (a LiveStream) has its results written straight to the socket as graphql-ws
 * `next` messages: the JSON payload is shared, and so are the message bytes between subscribers
 * whose subscription ids match; graphql-ws itself only sees the stream end (or fail), and then
 * sends `complete` (or `error`), after every `next`.
 */
export class SharedSubscriptions {
  private readonly results = new LRUCache<string, Shared | Promise<Shared>>({ max: 20_000, ttl: 60_000 });
  private readonly selections = new LRUCache<string, Selection>({ max: 1000 });

  /** True for subscription operations, whose events may be shared. */
  static isSubscription(document: DocumentNode, operationName: string | null | undefined): boolean {
    const operation = document.definitions.find(
      (d) => d.kind === Kind.OPERATION_DEFINITION && (!operationName || d.name?.value === operationName),
    );
    return (
      operation?.kind === Kind.OPERATION_DEFINITION && operation.operation === OperationTypeNode.SUBSCRIPTION
    );
  }

  /**
   * graphql's subscribe, with per-event execution shared by `selectionKey`; with an `outlet`,
   * results of a pushing source are sent from here, and the stream returned yields nothing.
   */
  async subscribe(
    args: ExecutionArgs,
    mask: MaskErrors,
    selectionKey: string,
    outlet?: Outlet,
  ): Promise<AsyncGenerator<ExecutionResult> | ExecutionResult> {
    const stream = await createSourceEventStream(args);
    if (!(Symbol.asyncIterator in stream)) return stream as ExecutionResult;
    let selection = this.selections.get(selectionKey);
    if (!selection) {
      selection = { key: selectionKey };
      this.selections.set(selectionKey, selection);
    }
    const results = new SelectionResults(args, mask, selection, this.results);
    if (outlet && isLiveStream<{ id?: string }>(stream)) return new DirectDelivery(stream, results, outlet);
    const source = (stream as AsyncIterable<{ id?: string }>)[Symbol.asyncIterator]();
    // A plain iterator, not an async generator: return() must reach the source at once, even
    // while a next() is still waiting for an event (a generator would queue it behind that).
    const mapped: AsyncGenerator<ExecutionResult> = {
      async next() {
        const step = await source.next();
        if (step.done) return { value: undefined, done: true };
        return { value: (await results.of(step.value)).result, done: false };
      },
      async return() {
        await source.return?.();
        return { value: undefined, done: true };
      },
      async throw(error: unknown) {
        await source.return?.();
        throw error;
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
    return mapped;
  }
}

/** One subscription's view of the shared results of its selection. */
export class SelectionResults {
  constructor(
    private readonly args: ExecutionArgs,
    private readonly mask: MaskErrors,
    private readonly selection: Selection,
    private readonly results: LRUCache<string, Shared | Promise<Shared>>,
  ) {}

  /** The result of `event`: executed once per selection, while cached. */
  of(event: { id?: string }): Shared | Promise<Shared> {
    const id = typeof event?.id === "string" ? event.id : undefined;
    if (id === undefined) return this.execute(event);
    const selection = this.selection;
    // One event reaches every subscriber of a selection in one run: the latest is the one asked for.
    if (selection.eventId === id && selection.latest) return selection.latest;
    const key = `${id}\n${selection.key}`;
    let shared = this.results.get(key);
    if (!shared) {
      shared = this.execute(event);
      this.results.set(key, shared);
    }
    selection.eventId = id;
    selection.latest = shared;
    return shared;
  }

  /** graphql's own execute of one event (envelop's execute would start a new subscription). */
  private execute(event: unknown): Shared | Promise<Shared> {
    const result = executeOperation({ ...this.args, rootValue: event });
    return result instanceof Promise
      ? result.then((r) => ({ result: this.mask(r) }))
      : { result: this.mask(result) };
  }
}
