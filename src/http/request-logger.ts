import type { FastifyBaseLogger } from "fastify";

const METHODS = ["fatal", "error", "warn", "info", "debug", "trace"] as const;
type Method = (typeof METHODS)[number];

/**
 * Fastify's per-request child logger, created only when something is logged. A pino child costs
 * more than many a whole request (its bindings go through redaction); at LOG_LEVEL=warn most
 * requests log nothing, and then none is built. Levels below the threshold are dropped here
 * without building it either.
 */
export function lazyRequestLogger(
  logger: FastifyBaseLogger,
  bindings: Record<string, unknown>,
  options: { level?: string },
): FastifyBaseLogger {
  return new LazyLogger(logger, bindings, options) as unknown as FastifyBaseLogger;
}

/**
 * One object per request and nothing else: its methods live on the prototype, since under tsx
 * (keepNames) every named closure made per request would cost a defineProperty as well.
 */
class LazyLogger {
  private built: FastifyBaseLogger | undefined;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Record<string, unknown>,
    private readonly options: { level?: string },
  ) {}

  /** The pino child, built on first use. */
  real(): FastifyBaseLogger {
    this.built ??= this.parent.child(this.bindings, this.options);
    return this.built;
  }

  get level(): string {
    return this.built?.level ?? this.options.level ?? this.parent.level;
  }

  set level(level: string) {
    this.real().level = level;
  }

  /** Whether a line of this level would be written. */
  enabled(method: Method): boolean {
    const values = (this.parent as unknown as { levels: { values: Record<string, number> } }).levels.values;
    return (values[method] ?? 0) >= (values[this.level] ?? 0);
  }

  child(bindings: Record<string, unknown>, options?: object): FastifyBaseLogger {
    return this.real().child(bindings, options);
  }

  silent(): void {}
}

for (const method of METHODS) {
  Object.defineProperty(LazyLogger.prototype, method, {
    writable: true,
    configurable: true,
    value(this: LazyLogger, ...args: unknown[]) {
      if (!this.enabled(method)) return;
      (this.real()[method] as (...a: unknown[]) => void)(...args);
    },
  });
}
