import { createServer } from "node:http";
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from "fastify";
import type { DestinationStream, Logger } from "pino";
import type { Config } from "./config.js";
import { type Database, openDatabase } from "./db/client.js";
import type { Deps } from "./domain/deps.js";
import { FailureLimiter } from "./domain/rate-limit.js";
import { loadServiceSecrets } from "./domain/service-secrets.js";
import { seedSettings } from "./domain/settings.js";
import { createSigner } from "./domain/signing-key.js";
import { type SweepResult, startSweeper } from "./domain/sweeper.js";
import { readTokenEvent } from "./domain/token-event.js";
import { TokenReader } from "./domain/token-reader.js";
import { TokenWriter } from "./domain/token-writer.js";
import { bootstrapAdmin } from "./domain/user.js";
import { createEventBus, type EventBus } from "./events/bus.js";
import { EventHub } from "./events/hub.js";
import { createGraphQLWebSocketServer } from "./graphql/ws.js";
import { createGraphQLServer, GRAPHQL_PATH } from "./graphql/yoga.js";
import { createFastPaths } from "./http/fast-paths.js";
import { registerHealthRoutes } from "./http/health.js";
import { registerJwksRoute } from "./http/jwks.js";
import { lazyRequestLogger } from "./http/request-logger.js";
import { createValidateEndpoint } from "./http/validate.js";
import { createLogger } from "./logger.js";
import { createMetrics, type Metrics } from "./metrics.js";
import { createOAuthFastPath } from "./oauth/fast-path.js";
import { oauthRoutes } from "./oauth/routes.js";

export interface BuildAppOptions {
  readonly config: Config;
  /** Where logs go (default stdout); tests capture them to check that no secret is logged. */
  readonly logDestination?: DestinationStream;
  /** Called for every SQL statement (tests count statements to prove batching). */
  readonly onQuery?: (sql: string) => void;
}

export interface App {
  /** Opens and migrates the database, bootstraps the admin and listens. */
  start(): Promise<{ url: string; port: number }>;
  /** Graceful: stops accepting, finishes in-flight requests, closes sockets and the database. */
  stop(): Promise<void>;
  /** Available once started. */
  readonly deps: Deps;
}

/** Builds the service. Nothing happens until `start()`: importing or building has no side effects. */
export function buildApp(options: BuildAppOptions): App {
  const { config } = options;
  let deps: Deps | undefined;
  let http: FastifyInstance | undefined;
  let ws: ReturnType<typeof createGraphQLWebSocketServer> | undefined;
  let database: Database | undefined;
  let stopSweeper: (() => Promise<void>) | undefined;
  let bus: EventBus | undefined;

  return {
    get deps() {
      if (!deps) throw new Error("the app is not started");
      return deps;
    },
    async start() {
      const log = createLogger(config.logLevel, options.logDestination);
      database = await openDatabase({
        databaseUrl: config.databaseUrl,
        dataDir: config.dataDir,
        onQuery: options.onQuery,
      });
      const secrets = await loadServiceSecrets(config, database, log);
      const base = { config, database, db: database.db, secrets, log };
      const metrics = createMetrics();
      bus = createEventBus(database, log, config.eventHeartbeatMs);
      await bus.start();
      deps = Object.freeze({
        ...base,
        signer: createSigner(base),
        limiter: new FailureLimiter(config.authFailures),
        bus,
        hub: new EventHub(
          bus,
          config.eventQueueLimit,
          metrics,
          (id) => readTokenEvent(database!.db, id),
          log,
        ),
        metrics,
        writer:
          database.driver === "postgres"
            ? new TokenWriter(database, log, 2, options.onQuery, PG_GATHER_MS)
            : new TokenWriter(database, log, 1, options.onQuery, PGLITE_GATHER_MS),
        reader: new TokenReader(database, log, options.onQuery, READ_GATHER_MS),
      });
      await seedSettings(deps);
      const admin = await bootstrapAdmin(deps);
      if (admin?.generatedPassword) {
        // Printed once, outside the structured log, so that log shipping never carries it.
        process.stdout.write(
          `\nCreated admin user "${admin.username}" with generated password: ${admin.generatedPassword}\n` +
            "Store it now: it is not shown again. Set ADMIN_PASSWORD to choose it yourself.\n\n",
        );
      } else if (admin) {
        log.info({ username: admin.username }, "created admin user");
      }

      http = createHttpServer(deps, log);
      ws = createGraphQLWebSocketServer(deps, createGraphQLServer(deps));
      http.server.on("upgrade", ws.handleUpgrade);
      stopSweeper = startSweeper(deps, (swept) => recordSweep(deps!.metrics, swept));
      await http.listen({ host: config.host, port: config.port });
      const address = http.server.address();
      const port = typeof address === "object" && address ? address.port : config.port;
      const host = config.host === "0.0.0.0" || config.host === "::" ? "localhost" : config.host;
      return { url: `http://${host}:${port}`, port };
    },
    async stop() {
      await stopSweeper?.();
      await ws?.close();
      await http?.close();
      await bus?.stop();
      // Publication ends of JWT signing keys still unwritten (the JWTs are out already).
      await deps?.signer.settle();
      await database?.close();
      ws = undefined;
      http = undefined;
      database = undefined;
      stopSweeper = undefined;
      bus = undefined;
    },
  };
}

function createHttpServer(deps: Deps, log: Logger): FastifyInstance {
  const validate = createValidateEndpoint(deps);
  const fast = createFastPaths([validate.answer, createOAuthFastPath(deps)]);
  const app = Fastify({
    // The hot endpoints are answered before Fastify (see http/fast-paths.ts).
    serverFactory: (handler) => {
      const server = createServer((request, response) => {
        if (!fast.answer(request, response)) handler(request, response);
      });
      server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
      return server;
    },
    loggerInstance: log.child({}, { serializers: { req: serializeRequest } }) as FastifyBaseLogger,
    childLoggerFactory: lazyRequestLogger,
    bodyLimit: deps.config.limits.httpBody,
    // request.ip (per-source limits, request log): the same trust as clientAddressOf's.
    trustProxy: deps.config.trustProxy ?? false,
    forceCloseConnections: "idle",
    return503OnClosing: true,
  });
  const yoga = createGraphQLServer(deps);

  app.route({
    url: GRAPHQL_PATH,
    method: ["GET", "POST", "OPTIONS"],
    handler: async (request, reply) => {
      const response = await yoga.handleNodeRequestAndResponse(request, reply, { source: request.ip });
      response.headers.forEach((value, key) => {
        reply.header(key, value);
      });
      reply.status(response.status);
      reply.send(response.body);
      return reply;
    },
  });
  registerHealthRoutes(app, deps.database);
  registerJwksRoute(app, deps);
  validate.register(app);
  fast.register(app);
  deps.metrics.probes.validationCacheEntries = () => validate.gateway.cache.size;
  app.get("/metrics", async (_request, reply) =>
    reply
      .header("content-type", deps.metrics.registry.contentType)
      .send(await deps.metrics.registry.metrics()),
  );
  app.register(async (scope) => oauthRoutes(scope, deps));

  // Bad requests get a clear 4xx; anything else is logged and masked, never a stack trace.
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) request.log.error({ err: error }, "unhandled error");
    const message = status === 500 ? "internal server error" : error.message;
    if (request.url.startsWith(GRAPHQL_PATH)) {
      return reply
        .status(status)
        .send({ errors: [{ message, extensions: { code: error.code ?? "BAD_REQUEST" } }] });
    }
    return reply.status(status).send({ error: status === 500 ? "server_error" : "invalid_request", message });
  });
  app.setNotFoundHandler((_request, reply) =>
    reply.status(404).send({ error: "not_found", message: "not found" }),
  );
  return app;
}

/** How long a short token batch on PGlite may wait for the rest of its callers (TokenWriter). */
const PGLITE_GATHER_MS = 1;
/** The same on PostgreSQL, where two batches may be in flight: a shorter wait. */
const PG_GATHER_MS = 0.3;

/**
 * How long a short batch of token reads may wait for the rest of its callers (TokenReader), on
 * either driver: every statement saved is a round trip, a write and a parse less.
 */
const READ_GATHER_MS = 1;

/** Fastify's own default, which a custom server factory must set itself. */
const KEEP_ALIVE_TIMEOUT_MS = 72_000;

/** Request log lines: method, path without query string (it may carry credentials), client address. */
function serializeRequest(request: { method: string; url: string; ip?: string }) {
  return { method: request.method, path: request.url.split("?")[0], remoteAddress: request.ip };
}

function recordSweep(metrics: Metrics, swept: SweepResult): void {
  if (swept.expired > 0) metrics.sweeperLag.set(swept.lag);
  metrics.swept.inc({ job: "expired" }, swept.expired);
  metrics.swept.inc({ job: "expiring_soon" }, swept.expiringSoon);
  metrics.swept.inc({ job: "grace_ended" }, swept.graceEnded);
  metrics.swept.inc({ job: "purged" }, swept.purged);
}
