/**
 * Load-generator child of the gateway suite: autocannon through its API (the CLI cannot vary a
 * request), so that a run can rotate request bodies: with `bodies`, request n of the whole run
 * (all connections together) carries bodies[n % length], so consecutive requests name different
 * tokens. Without `bodies`, every request is the same prebuilt buffer, as with the CLI.
 * Reads its spec (JSON, see LoadSpec) from the file named by its first argument and prints
 * autocannon's result as one JSON line.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

export interface LoadSpec {
  readonly url: string;
  readonly method: "GET" | "POST";
  readonly headers: Record<string, string>;
  readonly body?: string;
  readonly bodies?: readonly string[];
  readonly connections: number;
  readonly seconds: number;
}

interface RequestData {
  body?: string;
  [key: string]: unknown;
}

type Autocannon = (
  options: Record<string, unknown>,
  callback: (error: Error | null, result: unknown) => void,
) => unknown;

const require = createRequire(import.meta.url);
const autocannon = require("autocannon") as Autocannon;

const file = process.argv[2];
if (!file) throw new Error("usage: load-worker.ts <spec.json>");
const spec = JSON.parse(readFileSync(file, "utf8")) as LoadSpec;

let next = 0;
const bodies = spec.bodies;
const options: Record<string, unknown> = {
  url: spec.url,
  method: spec.method,
  headers: spec.headers,
  connections: spec.connections,
  duration: spec.seconds,
  ...(spec.body !== undefined ? { body: spec.body } : {}),
  ...(bodies && bodies.length > 0
    ? {
        requests: [
          {
            setupRequest: (request: RequestData) => {
              request.body = bodies[next++ % bodies.length];
              return request;
            },
          },
        ],
      }
    : {}),
};

autocannon(options, (error, result) => {
  if (error) {
    console.error(error);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
});
