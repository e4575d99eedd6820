/**
 * Starting the servers every suite loads, each in a child process pinned to the server core and
 * registered for teardown: ours over a fresh PGlite directory or a fresh PostgreSQL database,
 * oidc-provider, and the bare baselines of the gateway suite.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import postgres from "postgres";
import { ServerChild } from "./children.js";
import { type ClientCredentials, type ProvisionOptions, provisionClient } from "./provision.js";
import { TARGET_LABEL } from "./report.js";
import { SERVER_CORE, settings } from "./settings.js";
import { onTeardown } from "./teardown.js";

const env = process.env;

export interface OurServer {
  readonly target: "pglite" | "postgres";
  readonly server: ServerChild;
  readonly client: ClientCredentials;
  readonly database: { dataDir?: string; url?: string };
}

/** Our service in a child process over a fresh database, with one provisioned client. */
export async function startOurs(
  target: "pglite" | "postgres",
  provision: ProvisionOptions = {},
  label = TARGET_LABEL[target],
  /** Added to the service's environment (the bench child's own switches, see token-server.ts). */
  extraEnv: Record<string, string> = {},
  /** Another checkout of the repository to run instead of this one (bench/paired.ts). */
  checkout?: string,
): Promise<OurServer> {
  const admin = { username: "admin", password: randomBytes(18).toString("base64url") };
  const dataDir = await mkdtemp(join(tmpdir(), "tm-bench-"));
  onTeardown(`remove ${dataDir}`, () => rm(dataDir, { recursive: true, force: true }));
  let url: string | undefined;
  if (target === "postgres") url = await createDatabase();
  const script = checkout ? join(resolve(checkout), "bench", "token-server.ts") : "./token-server.ts";
  const server = await ServerChild.start(label, script, {
    core: SERVER_CORE,
    nodeArgs: settings.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${settings.cpuProf}`] : [],
    env: { ...serviceEnv({ dataDir, url, admin }), ...extraEnv },
  });
  onTeardown(`stop ${server.name}`, () => server.stop());
  const client = await provisionClient(server.url, admin, provision);
  return { target, server, client, database: url ? { url } : { dataDir } };
}

/**
 * The service's environment in a benchmark: a clean one, so that only what the benchmark means
 * to set reaches the service, with service secrets given as in production.
 */
export function serviceEnv(options: {
  dataDir: string;
  url: string | undefined;
  admin: { username: string; password: string };
}): Record<string, string | undefined> {
  return {
    PATH: env.PATH,
    HOME: env.HOME,
    NODE_ENV: "production",
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "warn",
    DATA_DIR: options.dataDir,
    ...(options.url ? { DATABASE_URL: options.url } : {}),
    ADMIN_USERNAME: options.admin.username,
    ADMIN_PASSWORD: options.admin.password,
    // Service secrets from the environment, as in production (no generated-secrets warning).
    TOKEN_HASH_KEY: randomBytes(32).toString("hex"),
    TOKEN_ENCRYPTION_KEYS: `bench:${randomBytes(32).toString("hex")}`,
  };
}

/** A database of its own on the PostgreSQL server, dropped at the end. */
export async function createDatabase(prefix = "tm_bench"): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  // Registered first: a signal arriving during the creation still drops it ("if exists").
  onTeardown(`drop database ${name}`, async () => {
    const sql = postgres(settings.databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
    try {
      await sql.unsafe(`drop database if exists ${name} with (force)`);
    } finally {
      await sql.end({ timeout: 5 });
    }
  });
  const admin = postgres(settings.databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(settings.databaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface PeerServer {
  readonly server: ServerChild;
  readonly client: ClientCredentials;
}

/** panva's oidc-provider with one client_credentials client (see oidc-provider-server.ts). */
export async function startPeer(label = TARGET_LABEL["oidc-provider"]): Promise<PeerServer> {
  const client = { clientId: "bench-client", clientSecret: randomBytes(32).toString("hex") };
  const server = await ServerChild.start(label, "./oidc-provider-server.ts", {
    core: SERVER_CORE,
    env: {
      PATH: env.PATH,
      HOME: env.HOME,
      NODE_ENV: "production",
      BENCH_CLIENT_ID: client.clientId,
      BENCH_CLIENT_SECRET: client.clientSecret,
    },
  });
  onTeardown(`stop ${server.name}`, () => server.stop());
  return { server, client };
}

/**
 * A baseline of the gateway suite (bare-server.ts): node:http or Fastify answering a fixed 200,
 * or node:http answering `body` as a fixed introspection answer.
 */
export async function startBare(
  kind: "node" | "fastify" | "introspection",
  label: string,
  body?: string,
): Promise<ServerChild> {
  const server = await ServerChild.start(label, "./bare-server.ts", {
    core: SERVER_CORE,
    env: {
      PATH: env.PATH,
      HOME: env.HOME,
      NODE_ENV: "production",
      BENCH_BARE: kind,
      ...(body === undefined ? {} : { BENCH_BARE_BODY: body }),
    },
  });
  onTeardown(`stop ${server.name}`, () => server.stop());
  return server;
}
