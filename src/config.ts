import { z } from "zod";
import { compileProxyTrust, type ProxyTrust } from "./http/client-address.js";

/** Booleans from the environment: only the obvious spellings, anything else is an error. */
const flag = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

/** A validity period in seconds: negative = never expires, zero is meaningless. */
const validity = z.coerce
  .number()
  .int()
  .refine((v) => v !== 0, "must not be 0 (use a negative value for tokens that never expire)");

/** setTimeout's longest delay: a longer interval would fire at once (Node sets it to 1 ms). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** Ten years, the longest validity the service gives: no duration setting needs more. */
const MAX_DURATION_SECONDS = 10 * 365 * 86400;
/** A timer's period or delay (ms). */
const milliseconds = (min: number) => z.coerce.number().int().min(min).max(MAX_TIMER_MS);
/** A duration in seconds, at most ten years (larger ones overflow the database's timestamps). */
const seconds = (min: number) => z.coerce.number().int().min(min).max(MAX_DURATION_SECONDS);

/** TOKEN_HASH_KEY's keys as the bytes they decode to (hex). */
const hashKeyBytes = (value: string) =>
  value.split(",").map((hex) => Buffer.from(hex, "hex").toString("hex"));
/** The key ids TOKEN_ENCRYPTION_KEYS lists, in order. */
const keyIdsOf = (value: string | undefined) => (value ?? "").split(",").map((entry) => entry.split(":")[0]);

const schema = z.object({
  NODE_ENV: z.enum(["development", "production", "test"]).default("development"),
  HOST: z.string().min(1).default("0.0.0.0"),
  PORT: z.coerce.number().int().min(0).max(65535).default(4000),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  DATA_DIR: z.string().min(1).default("./data"),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }).optional(),
  ISSUER: z.url().optional(),
  ADMIN_USERNAME: z.string().min(1).max(64).default("admin"),
  ADMIN_PASSWORD: z.string().min(8).max(256).optional(),
  TOKEN_HASH_KEY: z
    .string()
    .regex(
      /^[0-9a-fA-F]{64,}(,[0-9a-fA-F]{64,})*$/,
      "must be hex keys of at least 32 bytes, comma-separated (the first one current)",
    )
    .optional()
    // Compared as the bytes each key decodes to (an odd last digit is dropped).
    .refine(
      (value) => value === undefined || new Set(hashKeyBytes(value)).size === value.split(",").length,
      "must not repeat a key",
    ),
  TOKEN_HASH_REHASH: flag.default(false),
  TOKEN_PERSISTENCE: z.enum(["hash", "encrypt"]).default("hash"),
  TOKEN_ENCRYPTION_KEYS: z
    .string()
    .regex(
      /^[A-Za-z0-9_-]{1,32}:[0-9a-fA-F]{64}(,[A-Za-z0-9_-]{1,32}:[0-9a-fA-F]{64})*$/,
      "must be id:hex64[,id:hex64...] (AES-256 keys, the first one current)",
    )
    .optional()
    // A repeated id would open ciphertext with the wrong key.
    .refine((value) => new Set(keyIdsOf(value)).size === keyIdsOf(value).length, "must not repeat a key id")
    .refine(
      (value) => !keyIdsOf(value).includes("generated"),
      'must not use the key id "generated" (the key generated on first start has it)',
    ),
  JWT_SIGNING_ALG: z.enum(["RS256", "ES256", "PS256", "EdDSA"]).default("RS256"),
  JWT_SIGNING_KEY_MAX_AGE: seconds(1).default(30 * 86400),
  SWEEPER_INTERVAL_MS: milliseconds(1).default(1000),
  EVENT_QUEUE_LIMIT: z.coerce.number().int().positive().default(1000),
  EVENT_SEND_BUFFER_LIMIT: z.coerce
    .number()
    .int()
    .positive()
    .default(1024 * 1024),
  EVENT_SLOW_CONSUMER_GRACE_MS: milliseconds(0).default(2000),
  EXPIRING_SOON_WARNING: seconds(0).default(300),
  TOKEN_RETENTION: seconds(1).default(7 * 86400),
  EVENT_HEARTBEAT_MS: milliseconds(50).default(1000),
  CLIENT_DOMAIN_HEADER: z
    .string()
    .regex(/^[A-Za-z0-9-]{1,64}$/, "must be an HTTP header name")
    .default("domain"),
  VALIDATION_CACHE_SIZE: z.coerce.number().int().positive().default(100_000),
  VALIDATION_CACHE_TTL: seconds(1).default(30),
  REFRESH_RETRY_WINDOW: z.coerce.number().int().min(0).max(300).default(10),
  AUTH_FAILURE_LIMIT: z.coerce.number().int().positive().default(10),
  AUTH_FAILURE_LIMIT_PER_SOURCE: z.coerce.number().int().positive().default(50),
  AUTH_FAILURE_WINDOW: seconds(1).default(60),
  TRUST_PROXY: z
    .string()
    .optional()
    .transform((value, ctx) => {
      try {
        return compileProxyTrust(value);
      } catch (error) {
        ctx.addIssue({
          code: "custom",
          message: `must list addresses, CIDR ranges, loopback, linklocal or uniquelocal (${(error as Error).message})`,
        });
        return z.NEVER;
      }
    }),
  APPLICATION_TOKEN_VALIDITY: validity.default(3600),
  USER_TOKEN_VALIDITY: validity.default(3600),
  REFRESH_TOKEN_VALIDITY: validity.default(86400),
  GRAPHQL_INTROSPECTION: flag.optional(),
  GRAPHQL_MAX_DEPTH: z.coerce.number().int().positive().default(10),
  GRAPHQL_MAX_ALIASES: z.coerce.number().int().positive().default(15),
  GRAPHQL_MAX_COST: z.coerce.number().int().positive().default(5000),
  GRAPHQL_MAX_TOKENS: z.coerce.number().int().positive().default(2000),
  HTTP_BODY_LIMIT: z.coerce.number().int().positive().default(102_400),
  WS_MAX_PAYLOAD: z.coerce.number().int().positive().default(65_536),
  WS_MAX_OPERATIONS: z.coerce.number().int().positive().default(50),
  SHUTDOWN_TIMEOUT_MS: milliseconds(1).default(10_000),
});

export type Env = z.input<typeof schema>;

export interface Config {
  readonly env: "development" | "production" | "test";
  readonly host: string;
  readonly port: number;
  readonly logLevel: string;
  readonly dataDir: string;
  readonly databaseUrl: string | undefined;
  readonly issuer: string;
  readonly admin: { readonly username: string; readonly password: string | undefined };
  /** HMAC keys (hex) for credentials at rest, the current one first; undefined = generated on first start. */
  readonly tokenHashKeys: readonly string[] | undefined;
  /**
   * Whether a consumer secret that verifies under a key after the first is hashed again under the
   * first at its use: on only once every instance lists the new key first (see the README).
   */
  readonly tokenHashRehash: boolean;
  /** `hash` (default): keyed hashes only; `encrypt`: also AES-256-GCM ciphertext, so owners can show a token again. */
  readonly tokenPersistence: "hash" | "encrypt";
  /** AES-256 keys by id, the current one first; undefined = generated on first start. */
  readonly tokenEncryptionKeys: ReadonlyArray<{ readonly id: string; readonly key: string }> | undefined;
  readonly jwt: { readonly alg: "RS256" | "ES256" | "PS256" | "EdDSA"; readonly signingKeyMaxAge: number };
  readonly sweeperIntervalMs: number;
  /**
   * PostgreSQL event stream heartbeat: caches trust their entries while a beat sent within two
   * intervals was heard; silence for three beats counts as an interruption.
   */
  readonly eventHeartbeatMs: number;
  /** Events queued for one live subscriber before it is cut off as too slow. */
  readonly eventQueueLimit: number;
  /**
   * Bytes a live subscriber's WebSocket may hold unsent (the peer not reading) before it is cut
   * off as too slow: bursts are judged by what the socket cannot flush, not by their size.
   */
  readonly eventSendBufferLimit: number;
  readonly eventSlowConsumerGraceMs: number;
  /** Seconds before expiry that EXPIRING_SOON is sent (0 = never). */
  readonly expiringSoonWarning: number;
  /** Seconds expired and revoked token rows are kept before the sweeper purges them (events stay). */
  readonly tokenRetention: number;
  readonly gateway: {
    /** The header carrying the caller's domain (the seeds' ClientDomainHeader). */
    readonly clientDomainHeader: string;
    readonly cacheSize: number;
    /** Seconds a cached token's subscriptions and scopes are trusted; revocation is pushed, never waited for. */
    readonly cacheTtl: number;
  };
  /** Seconds in which a repeated refresh (a lost response) gets the same new pair back. */
  readonly refreshRetryWindow: number;
  /**
   * The proxies whose X-Forwarded-For is believed (TRUST_PROXY); undefined: none, the socket's
   * peer is the client.
   */
  readonly trustProxy: ProxyTrust | undefined;
  /** Failed credential checks allowed per client id or username, and per source address, per window (s). */
  readonly authFailures: {
    readonly perPrincipal: number;
    readonly perSource: number;
    readonly window: number;
  };
  readonly validity: { readonly application: number; readonly user: number; readonly refresh: number };
  readonly graphql: {
    readonly introspection: boolean;
    readonly maxDepth: number;
    readonly maxAliases: number;
    readonly maxCost: number;
    readonly maxTokens: number;
  };
  readonly limits: {
    readonly httpBody: number;
    readonly wsPayload: number;
    /** Operations (subscriptions, queries, mutations) in progress at once on one WebSocket. */
    readonly wsOperations: number;
  };
  readonly shutdownTimeoutMs: number;
}

/** Raised at start when a setting is invalid; names every bad variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/**
 * Parses the environment once into a frozen, typed configuration.
 * This module is the only reader of `process.env` (see `.env.example` for every key).
 */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means "not set", as in most .env tooling.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
  }
  const e = parsed.data;
  return Object.freeze({
    env: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    dataDir: e.DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    issuer: (e.ISSUER ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ""),
    admin: Object.freeze({ username: e.ADMIN_USERNAME, password: e.ADMIN_PASSWORD }),
    tokenHashKeys: e.TOKEN_HASH_KEY?.split(","),
    tokenHashRehash: e.TOKEN_HASH_REHASH,
    tokenPersistence: e.TOKEN_PERSISTENCE,
    tokenEncryptionKeys: e.TOKEN_ENCRYPTION_KEYS?.split(",").map((entry) => {
      const [id, key] = entry.split(":") as [string, string];
      return Object.freeze({ id, key });
    }),
    jwt: Object.freeze({ alg: e.JWT_SIGNING_ALG, signingKeyMaxAge: e.JWT_SIGNING_KEY_MAX_AGE }),
    sweeperIntervalMs: e.SWEEPER_INTERVAL_MS,
    eventHeartbeatMs: e.EVENT_HEARTBEAT_MS,
    eventQueueLimit: e.EVENT_QUEUE_LIMIT,
    eventSendBufferLimit: e.EVENT_SEND_BUFFER_LIMIT,
    eventSlowConsumerGraceMs: e.EVENT_SLOW_CONSUMER_GRACE_MS,
    expiringSoonWarning: e.EXPIRING_SOON_WARNING,
    tokenRetention: e.TOKEN_RETENTION,
    gateway: Object.freeze({
      clientDomainHeader: e.CLIENT_DOMAIN_HEADER.toLowerCase(),
      cacheSize: e.VALIDATION_CACHE_SIZE,
      cacheTtl: e.VALIDATION_CACHE_TTL,
    }),
    refreshRetryWindow: e.REFRESH_RETRY_WINDOW,
    trustProxy: e.TRUST_PROXY,
    authFailures: Object.freeze({
      perPrincipal: e.AUTH_FAILURE_LIMIT,
      perSource: e.AUTH_FAILURE_LIMIT_PER_SOURCE,
      window: e.AUTH_FAILURE_WINDOW,
    }),
    validity: Object.freeze({
      application: e.APPLICATION_TOKEN_VALIDITY,
      user: e.USER_TOKEN_VALIDITY,
      refresh: e.REFRESH_TOKEN_VALIDITY,
    }),
    graphql: Object.freeze({
      introspection: e.GRAPHQL_INTROSPECTION ?? e.NODE_ENV !== "production",
      maxDepth: e.GRAPHQL_MAX_DEPTH,
      maxAliases: e.GRAPHQL_MAX_ALIASES,
      maxCost: e.GRAPHQL_MAX_COST,
      maxTokens: e.GRAPHQL_MAX_TOKENS,
    }),
    limits: Object.freeze({
      httpBody: e.HTTP_BODY_LIMIT,
      wsPayload: e.WS_MAX_PAYLOAD,
      wsOperations: e.WS_MAX_OPERATIONS,
    }),
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
  });
}

/** Every environment variable the service reads (documented one by one in .env.example). */
export const CONFIG_KEYS = Object.keys(schema.shape);
