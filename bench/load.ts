import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pinned, spawnTracked, waitForExit } from "./children.js";
import type { LoadSpec } from "./load-worker.js";
import { onTeardown } from "./teardown.js";

const require = createRequire(import.meta.url);
const AUTOCANNON = require.resolve("autocannon/autocannon.js");
export const AUTOCANNON_VERSION = (require("autocannon/package.json") as { version: string }).version;

/** What the report needs from one autocannon run. */
export interface LoadResult {
  readonly connections: number;
  readonly seconds: number;
  /** Mean of the per-second samples. */
  readonly requestsPerSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly ok: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly statusCodes: Record<string, number>;
}

/** The one request every case sends: POST /token, client_credentials, HTTP Basic (RFC 6749 §2.3.1). */
export function tokenRequest(url: string, client: { clientId: string; clientSecret: string }) {
  const basic = Buffer.from(
    `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`,
  ).toString("base64");
  return {
    url: `${url}/token`,
    headers: {
      authorization: `Basic ${basic}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: "grant_type=client_credentials",
  };
}

/** Sends one request and checks it is a 200 with an access_token (before loading a server). */
export async function checkOneRequest(request: ReturnType<typeof tokenRequest>): Promise<void> {
  const response = await fetch(request.url, {
    method: "POST",
    headers: request.headers,
    body: request.body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  let body: { access_token?: unknown } = {};
  try {
    body = JSON.parse(text);
  } catch {}
  if (response.status !== 200 || typeof body.access_token !== "string") {
    throw new Error(`${request.url} answered ${response.status}: ${text.slice(0, 300)}`);
  }
}

/**
 * Runs autocannon in its own process, pinned to `core`, for `seconds` with `connections`
 * keep-alive connections, and returns its summary. Bounded: killed 30 s past its duration.
 */
export async function runLoad(
  request: ReturnType<typeof tokenRequest>,
  options: { connections: number; seconds: number; core: number },
): Promise<LoadResult> {
  const args = [
    process.execPath,
    AUTOCANNON,
    "--json",
    "--connections",
    String(options.connections),
    "--duration",
    String(options.seconds),
    "--method",
    "POST",
    ...Object.entries(request.headers).flatMap(([name, value]) => ["--headers", `${name}=${value}`]),
    "--body",
    request.body,
    request.url,
  ];
  const child = spawnTracked(pinned(options.core, args), { captureStdout: true });
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  const code = await waitForExit(child, (options.seconds + 30) * 1000);
  const line = output.trim().split("\n").pop();
  if (code !== 0 || !line) throw new Error(`autocannon failed (exit ${code}): ${output.slice(0, 500)}`);
  return loadResult(line, options.connections);
}

/** The report's figures from autocannon's JSON result (the CLI's --json line, or its API's result). */
function loadResult(line: string, connections: number): LoadResult {
  const result = JSON.parse(line) as {
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    "2xx": number;
    statusCodeStats: Record<string, { count: number }>;
    latency: { p50: number; p99: number };
    requests: { average: number };
  };
  return {
    connections,
    seconds: result.duration,
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    ok: result["2xx"],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([k, v]) => [k, v.count])),
  };
}

let specDir: Promise<string> | undefined;

/**
 * Runs load-worker.ts (autocannon through its API, which can rotate request bodies) in its own
 * process pinned to `core`, and returns its summary. Bounded: killed 30 s past its duration.
 */
export async function runWorkerLoad(spec: LoadSpec, core: number): Promise<LoadResult> {
  specDir ??= mkdtemp(join(tmpdir(), "tm-bench-load-")).then((dir) => {
    onTeardown(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
    return dir;
  });
  const file = join(await specDir, `${randomUUID()}.json`);
  await writeFile(file, JSON.stringify(spec));
  const worker = fileURLToPath(new URL("./load-worker.ts", import.meta.url));
  const child = spawnTracked(pinned(core, [process.execPath, "--import", "tsx", worker, file]), {
    captureStdout: true,
  });
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  const code = await waitForExit(child, (spec.seconds + 30) * 1000);
  await rm(file, { force: true });
  const line = output.trim().split("\n").pop();
  if (code !== 0 || !line) throw new Error(`autocannon failed (exit ${code}): ${output.slice(0, 500)}`);
  return loadResult(line, spec.connections);
}
