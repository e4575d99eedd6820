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

/** Masks unexpected resolver errors the way the HTTP path does. */
type MaskErrors = (result: ExecutionResult) => ExecutionResult;

/**
 * Subscriptions that many clients hold with the same selection (the admin console's
 * tokenEvents) would otherwise execute every event once per subscriber. Here each subscriber's
 * own source stream still decides *which* events it gets (visibility, filters, session checks),
 * but the result for one event and one selection (document, operation, variables) is executed
 * once and shared by every subscriber that receives it.
 */
export class SharedSubscriptions {
  private readonly results = new LRUCache<string, Promise<ExecutionResult>>({ max: 20_000, ttl: 60_000 });

  /** True for subscription operations, whose events may be shared. */
  static isSubscription(document: DocumentNode, operationName: string | null | undefined): boolean {
    const operation = document.definitions.find(
      (d) => d.kind === Kind.OPERATION_DEFINITION && (!operationName || d.name?.value === operationName),
    );
    return (
      operation?.kind === Kind.OPERATION_DEFINITION && operation.operation === OperationTypeNode.SUBSCRIPTION
    );
  }

  /** graphql's subscribe, with per-event execution shared by `selectionKey`. */
  async subscribe(
    args: ExecutionArgs,
    mask: MaskErrors,
    selectionKey: string,
  ): Promise<AsyncGenerator<ExecutionResult> | ExecutionResult> {
    // graphql's own execute of one event (envelop's execute would start a new subscription).
    const execute = async (event: unknown) => mask(await executeOperation({ ...args, rootValue: event }));
    const stream = await createSourceEventStream(args);
    if (!(Symbol.asyncIterator in stream)) return stream as ExecutionResult;
    const source = (stream as AsyncIterable<{ id?: string }>)[Symbol.asyncIterator]();
    const results = this.results;
    const resultFor = (event: { id?: string }): Promise<ExecutionResult> => {
      const id = typeof event?.id === "string" ? event.id : undefined;
      if (id === undefined) return execute(event);
      const key = `${id}\n${selectionKey}`;
      let result = results.get(key);
      if (!result) {
        result = execute(event);
        results.set(key, result);
      }
      return result;
    };
    // A plain iterator, not an async generator: return() must reach the source at once, even
    // while a next() is still waiting for an event (a generator would queue it behind that).
    const mapped: AsyncGenerator<ExecutionResult> = {
      async next() {
        const step = await source.next();
        return step.done
          ? { value: undefined, done: true }
          : { value: await resultFor(step.value), done: false };
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
