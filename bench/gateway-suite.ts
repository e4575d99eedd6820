/**
 * The gateway suite, written to the `<!-- bench:gateway -->` section of BENCHMARKS.md:
 *
 * - GET /validate on a cached token (the nginx `auth_request` / Envoy `ext_authz` hot path),
 *   against a bare node:http server answering a fixed 200 with an empty body, loaded with the
 *   very same request bytes; Fastify with one route answering 200 is measured too, as the
 *   framework's own ceiling. Target: ours ≥ 0.5x the bare server.
 * - POST /introspect (RFC 7662) "on a cache miss": every request names another token (a set of
 *   BENCH_INTROSPECT_TOKENS, rotated across the whole run), and our introspection reads the
 *   database on every call; against oidc-provider's introspection endpoint, with tokens minted
 *   the same way (client_credentials, same client) and introspected by that client. Target:
 *   ours ≥ 2x oidc-provider. Two references are measured beside them
 *   (BENCH_INTROSPECT_REFERENCES): ours over PGlite with every token answered from memory after
 *   its first read (all but the database read), and a bare node:http server writing our answer
 *   for one token to every request (all but our code).
 *
 * Every server runs pinned to the server core, the load generator to the other; each case
 * waits for a quiet machine first, as in the token suite.
 */
import { createRequire } from "node:module";
import { availableParallelism, cpus } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { pinning, type ServerChild } from "./children.js";
import { startCpuWindow, waitForQuiet } from "./cpu.js";
import {
  GATEWAY_LABEL,
  type GatewayCase,
  type GatewayMeta,
  type GatewayServer,
  renderGatewaySection,
} from "./gateway-report.js";
import { AUTOCANNON_VERSION, type LoadResult, runWorkerLoad } from "./load.js";
import type { LoadSpec } from "./load-worker.js";
import { commandLine, postgresVersion } from "./meta.js";
import { BENCH_API, type ClientCredentials } from "./provision.js";
import { medianRounds, writeSection } from "./report.js";
import { startBare, startOurs, startPeer } from "./servers.js";
import { Findings, LOAD_CORE, log, QUIET_THRESHOLD, settings } from "./settings.js";
import { checkLoad } from "./token-suite.js";

/** The resource every /validate request calls: it requires the API's scope, which the token holds. */
const RESOURCE = { method: "GET", pathPattern: "/items/{id}", scopes: [BENCH_API.scope] };
const ORIGINAL_URI = `${BENCH_API.context}/${BENCH_API.version}/items/42`;
/** Every server of ours (the reference without reads too) is provisioned alike: the same answers. */
export const PROVISION = { resources: [RESOURCE], keyScopes: [BENCH_API.scope] };

const ours = () => settings.targets.filter((t): t is "pglite" | "postgres" => t !== "oidc-provider");
const withPeer = () => settings.targets.includes("oidc-provider");
const measuring = (endpoint: GatewayCase["endpoint"]) => settings.gatewayEndpoints.includes(endpoint);

/** Measured runs this suite may do, a noisy case's reruns included (for the harness's time budget). */
export const gatewayCaseCount = () =>
  (1 + NOISY_RETRIES) *
  settings.rounds *
  settings.connections.length *
  ((measuring("validate") ? 2 + ours().length : 0) +
    (measuring("introspect")
      ? ours().length + (withPeer() ? 1 : 0) + (settings.introspectReferences ? 2 : 0)
      : 0));

interface Loaded {
  readonly kind: GatewayServer;
  readonly server: ServerChild;
  /** What autocannon sends (without the connection count and duration). */
  readonly spec: Omit<LoadSpec, "connections" | "seconds">;
  /** Checked before each case: one request answers as expected. */
  readonly check?: () => Promise<void>;
  /** Checked after each case: every token of the rotation is still active (introspection only). */
  readonly after?: () => Promise<void>;
}

/** Runs the suite and writes its section; `revision` is the commit measured. */
export async function runGatewaySuite(revision: string): Promise<Findings> {
  const findings = new Findings();
  const oursValidate: Loaded[] = [];
  const introspect: Loaded[] = [];

  for (const target of ours()) {
    log(`starting ${GATEWAY_LABEL[target]}…`);
    const running = await startOurs(target, PROVISION);
    const url = running.server.url;
    if (measuring("validate")) {
      const [token] = await mintTokens(`${url}/token`, running.client, 1);
      const request = validateRequest(token!);
      const check = () => checkValidate(url, request.headers);
      await check();
      oursValidate.push({
        kind: target,
        server: running.server,
        spec: { ...request, url: `${url}/validate` },
        check,
      });
    }
    if (measuring("introspect")) introspect.push(await introspected(target, running, "/introspect"));
  }
  if (measuring("introspect") && settings.introspectReferences) introspect.push(...(await startReferences()));
  // The baselines get the very same request bytes as ours (they ignore them).
  const sample = oursValidate[0]?.spec ?? { ...validateRequest("tmat_placeholder"), url: "" };
  const baseline = async (kind: "bare" | "fastify", server: ServerChild): Promise<Loaded> => {
    const url = `${server.url}/validate`;
    const check = async () => {
      const response = await fetch(url, { headers: sample.headers, signal: AbortSignal.timeout(10_000) });
      await response.arrayBuffer();
      if (response.status !== 200) throw new Error(`${server.name} answered ${response.status}`);
    };
    await check();
    return { kind, server, spec: { ...sample, url }, check };
  };
  const validate: Loaded[] = [];
  if (measuring("validate")) {
    log(`starting ${GATEWAY_LABEL.bare}…`);
    validate.push(await baseline("bare", await startBare("node", GATEWAY_LABEL.bare)));
    log(`starting ${GATEWAY_LABEL.fastify}…`);
    validate.push(await baseline("fastify", await startBare("fastify", GATEWAY_LABEL.fastify)));
    validate.push(...oursValidate);
  }
  if (withPeer() && measuring("introspect")) {
    log(`starting ${GATEWAY_LABEL["oidc-provider"]}…`);
    introspect.unshift(await introspected("oidc-provider", await startPeer(), "/token/introspection"));
  }

  const measured: GatewayCase[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    if (settings.rounds > 1) log(`round ${round} of ${settings.rounds}`);
    for (const connections of settings.connections) {
      for (const loaded of validate) measured.push(await measure("validate", loaded, connections, findings));
      for (const loaded of introspect)
        measured.push(await measure("introspect", loaded, connections, findings));
    }
  }
  const results = medianRounds(measured, (r) => `${r.endpoint} ${r.server} ${r.connections}`);
  for (const loaded of new Set([...validate, ...introspect].map((l) => l.server))) await loaded.stop();

  const require = createRequire(import.meta.url);
  const meta: GatewayMeta = {
    command: commandLine(process.env),
    revision,
    date: `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    nproc: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? "unknown CPU",
    node: process.version,
    postgres: ours().includes("postgres")
      ? await postgresVersion(settings.databaseUrl)
      : "PostgreSQL not used",
    oidcProvider: (require("oidc-provider/package.json") as { version: string }).version,
    fastify: (require("fastify/package.json") as { version: string }).version,
    autocannon: AUTOCANNON_VERSION,
    warmup: settings.warmup,
    duration: settings.duration,
    rounds: settings.rounds,
    tokens: settings.introspectTokens,
    originalUri: ORIGINAL_URI,
    pinning,
    problems: findings.problems,
    warnings: findings.warnings,
  };
  await writeSection(settings.output, renderGatewaySection(results, meta), "gateway");
  log(`\nwrote the gateway section of ${settings.output}`);
  return findings;
}

/**
 * An introspection case: `settings.introspectTokens` tokens minted by the server's client, every
 * one checked active before the runs (which reads each once) and again after each run.
 */
export async function introspected(
  kind: GatewayServer,
  running: { server: ServerChild; client: ClientCredentials },
  path: string,
): Promise<Loaded & { tokens: readonly string[] }> {
  const { server, client } = running;
  const tokens = await mintTokens(`${server.url}/token`, client, settings.introspectTokens);
  const endpoint = `${server.url}${path}`;
  const allActive = () => checkIntrospection(endpoint, client, tokens);
  await allActive();
  return {
    kind,
    server,
    spec: introspectionRequest(endpoint, client, tokens),
    check: () => checkIntrospection(endpoint, client, tokens.slice(0, 1)),
    after: allActive,
    tokens,
  };
}

/**
 * The references of /introspect: ours over PGlite answering every token from memory after its first
 * read (the check before the runs reads them all), and a bare node:http server answering what
 * that server answers for the first token, byte for byte, to the same requests.
 */
async function startReferences(): Promise<Loaded[]> {
  const label = GATEWAY_LABEL["pglite-no-read"];
  log(`starting ${label}…`);
  const running = await startOurs("pglite", PROVISION, label, { BENCH_SKIP_TOKEN_READS: "1" });
  const noRead = await introspected("pglite-no-read", running, "/introspect");
  const answer = await introspectionAnswer(
    `${running.server.url}/introspect`,
    running.client,
    noRead.tokens[0]!,
  );
  log(`starting ${GATEWAY_LABEL["bare-introspection"]}…`);
  const bare = await startBare("introspection", GATEWAY_LABEL["bare-introspection"], answer);
  const url = `${bare.url}/introspect`;
  const check = async () => {
    const body = await introspectionAnswer(url, running.client, noRead.tokens[0]!);
    if (body !== answer) throw new Error(`${bare.name} answered ${body.slice(0, 300)}`);
  };
  await check();
  return [
    noRead,
    {
      kind: "bare-introspection",
      server: bare,
      spec: introspectionRequest(url, running.client, noRead.tokens),
      check,
    },
  ];
}

/** The body of one introspection, which must be a 200. */
async function introspectionAnswer(url: string, client: ClientCredentials, token: string): Promise<string> {
  const response = await fetch(url, {
    method: "POST",
    headers: { authorization: basic(client), "content-type": "application/x-www-form-urlencoded" },
    body: `token=${encodeURIComponent(token)}`,
    signal: AbortSignal.timeout(30_000),
  });
  const body = await response.text();
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}: ${body.slice(0, 300)}`);
  return body;
}

/** A case measured again when other programs used more than QUIET_THRESHOLD during its run. */
const NOISY_RETRIES = 2;

/** Quiet wait, check, warm-up, then the measured run with its CPU window. */
async function measureOnce(label: string, loaded: Loaded, connections: number, findings: Findings) {
  const quietBefore = await waitForQuiet(QUIET_THRESHOLD, settings.quietWait * 1000);
  if (quietBefore !== undefined && quietBefore > QUIET_THRESHOLD) {
    findings.warnings.push(
      `${label}: the machine was busy before the case (${Math.round(quietBefore)}% of a core)`,
    );
  }
  await loaded.check?.();
  const run = (seconds: number) => runWorkerLoad({ ...loaded.spec, connections, seconds }, LOAD_CORE);
  const warm = await run(settings.warmup);
  checkLoad(`${label} (warm-up)`, warm, findings);
  // Requests cut off when the warm-up stopped finish before the measured run starts.
  await sleep(1_000);
  const ourServer =
    loaded.kind === "pglite" || loaded.kind === "postgres" || loaded.kind === "pglite-no-read";
  const before = ourServer ? await loaded.server.counts() : undefined;
  const cpuWindow = startCpuWindow(loaded.server.child.pid);
  const load: LoadResult = await run(settings.duration);
  return { load, cpu: cpuWindow(), before };
}

async function measure(
  endpoint: GatewayCase["endpoint"],
  loaded: Loaded,
  connections: number,
  findings: Findings,
): Promise<GatewayCase> {
  const label = `${endpoint === "validate" ? "GET /validate" : "POST /introspect"}, ${GATEWAY_LABEL[loaded.kind]}, ${connections} connections`;
  let attempt = 0;
  let measured: Awaited<ReturnType<typeof measureOnce>>;
  for (;;) {
    attempt += 1;
    measured = await measureOnce(label, loaded, connections, findings);
    const other = measured.cpu?.other ?? 0;
    if (other <= QUIET_THRESHOLD) break;
    // Another program started during the run: its figures are not this server's. Run it again.
    if (attempt > NOISY_RETRIES) {
      findings.warnings.push(
        `${label}: other programs used ${Math.round(other)}% of a core during the measured run (${attempt} attempts)`,
      );
      break;
    }
    log(`${label}: other programs used ${Math.round(other)}% of a core during the run; measuring again`);
  }
  const { load, cpu, before } = measured;
  checkLoad(label, load, findings);
  let statementsPerRequest: number | undefined;
  if (before) {
    const after = await loaded.server.counts();
    statementsPerRequest = (after.statements - before.statements) / Math.max(1, load.ok + load.non2xx);
  }
  try {
    await loaded.after?.();
  } catch (error) {
    findings.problems.push(`${label}: after the run, ${(error as Error).message}`);
  }
  log(
    `${label.padEnd(78)} ${Math.round(load.requestsPerSecond).toString().padStart(6)} req/s  p50 ${load.p50} ms  p99 ${load.p99} ms` +
      (statementsPerRequest !== undefined ? `  SQL/request ${statementsPerRequest.toFixed(2)}` : ""),
  );
  return { endpoint, server: loaded.kind, connections, load, cpu, statementsPerRequest };
}

const basic = (client: ClientCredentials) =>
  `Basic ${Buffer.from(`${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`).toString("base64")}`;

function validateRequest(token: string): Omit<LoadSpec, "connections" | "seconds" | "url"> {
  return {
    method: "GET",
    headers: {
      authorization: `Bearer ${token}`,
      "x-original-uri": ORIGINAL_URI,
      "x-original-method": "GET",
    },
  };
}

function introspectionRequest(
  url: string,
  client: ClientCredentials,
  tokens: readonly string[],
): Omit<LoadSpec, "connections" | "seconds"> {
  return {
    url,
    method: "POST",
    headers: { authorization: basic(client), "content-type": "application/x-www-form-urlencoded" },
    bodies: tokens.map((token) => `token=${encodeURIComponent(token)}`),
  };
}

/** `count` access tokens from POST /token (client_credentials), 16 requests at a time. */
async function mintTokens(url: string, client: ClientCredentials, count: number): Promise<string[]> {
  const tokens: string[] = [];
  await inParallel(count, 16, async () => {
    const response = await fetch(url, {
      method: "POST",
      headers: { authorization: basic(client), "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=client_credentials",
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await response.json()) as { access_token?: unknown };
    if (response.status !== 200 || typeof body.access_token !== "string") {
      throw new Error(`${url} answered ${response.status}: ${JSON.stringify(body).slice(0, 300)}`);
    }
    tokens.push(body.access_token);
  });
  return tokens;
}

/** One /validate request must pass with the identity headers, and the same token on another API must not. */
async function checkValidate(url: string, headers: Record<string, string>): Promise<void> {
  const response = await fetch(`${url}/validate`, { headers, signal: AbortSignal.timeout(10_000) });
  await response.arrayBuffer();
  const scopes = response.headers.get("x-auth-scopes")?.split(" ") ?? [];
  const missing = ["x-auth-subject", "x-auth-client-id", "x-auth-application-id", "x-auth-key-type"].filter(
    (name) => !response.headers.get(name),
  );
  if (response.status !== 200 || missing.length > 0 || !scopes.includes(BENCH_API.scope)) {
    throw new Error(
      `${url}/validate answered ${response.status} (missing ${missing.join(", ") || "no header"}, scopes ${scopes.join(" ")})`,
    );
  }
  const elsewhere = await fetch(`${url}/validate`, {
    headers: { ...headers, "x-original-uri": "/unsubscribed/1.0.0/items/42" },
    signal: AbortSignal.timeout(10_000),
  });
  await elsewhere.arrayBuffer();
  if (elsewhere.status !== 403) {
    throw new Error(
      `${url}/validate answered ${elsewhere.status} for an API the token does not subscribe to`,
    );
  }
}

/** Every token introspects as active, issued to `client` (16 requests at a time). */
async function checkIntrospection(
  url: string,
  client: ClientCredentials,
  tokens: readonly string[],
): Promise<void> {
  let next = 0;
  await inParallel(tokens.length, 16, async () => {
    const index = next++;
    const token = tokens[index]!;
    const response = await fetch(url, {
      method: "POST",
      headers: { authorization: basic(client), "content-type": "application/x-www-form-urlencoded" },
      body: `token=${encodeURIComponent(token)}`,
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await response.json()) as { active?: unknown; client_id?: unknown };
    if (response.status !== 200 || body.active !== true || body.client_id !== client.clientId) {
      throw new Error(
        `${url} answered ${response.status} ${JSON.stringify(body).slice(0, 200)} for token ${index + 1} of ${tokens.length}`,
      );
    }
  });
}

/** Runs `task` `count` times, at most `width` at once. */
async function inParallel(count: number, width: number, task: () => Promise<void>): Promise<void> {
  let started = 0;
  const lane = async () => {
    while (started < count) {
      started += 1;
      await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, count) }, lane));
}
