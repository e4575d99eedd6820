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
  let child: FastifyBaseLogger | undefined;
  const real = () => {
    child ??= logger.child(bindings, options);
    return child;
  };
  const values = (logger as unknown as { levels: { values: Record<string, number> } }).levels.values;
  const threshold = () => values[child?.level ?? options.level ?? logger.level] ?? 0;
  const lazy = {
    get level() {
      return child?.level ?? options.level ?? logger.level;
    },
    set level(level: string) {
      real().level = level;
    },
    child: (b: Record<string, unknown>, o?: object) => real().child(b, o),
    silent: () => undefined,
  } as Record<string, unknown>;
  for (const method of METHODS) {
    const rank = values[method] ?? 0;
    lazy[method] = (...args: unknown[]) => {
      if (rank < threshold()) return;
      (real()[method as Method] as (...a: unknown[]) => void)(...args);
    };
  }
  return lazy as unknown as FastifyBaseLogger;
}
