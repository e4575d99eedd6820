import type { IncomingMessage, ServerResponse } from "node:http";
import type { Deps } from "../domain/deps.js";
import { clientAddressOf } from "../http/client-address.js";
import { type OAuthCall, runEndpoint, type WireResponse, wireOfError } from "./call.js";
import { isFormContentType, parseForm } from "./form.js";
import { OAUTH_ENDPOINTS } from "./routes.js";

/**
 * POST /token, /introspect and /revoke with a well-formed form body, served by Node's HTTP server
 * before Fastify: the same endpoint code (call.ts) and the same response bytes, without the
 * framework's routing, hooks and per-request logger on the busiest endpoints. Anything unusual
 * (another content type, no Content-Length, a body over the limit, a query string) is left to
 * Fastify, whose answers for those cases stay the reference. At LOG_LEVEL=info each request still
 * gets its log line.
 */
export function createOAuthFastPath(deps: Deps) {
  const limit = deps.config.limits.httpBody;
  const addressOf = clientAddressOf(deps.config.trustProxy);

  return function answer(request: IncomingMessage, response: ServerResponse): boolean {
    if (request.method !== "POST") return false;
    const path = request.url ?? "";
    const endpoint = OAUTH_ENDPOINTS.get(path);
    if (!endpoint) return false;
    const headers = request.headers;
    const length = headers["content-length"];
    if (length === undefined || !/^\d{1,9}$/.test(length) || Number(length) > limit) return false;
    if (headers["transfer-encoding"] !== undefined || !isFormContentType(headers["content-type"]))
      return false;

    const started = performance.now();
    const ip = addressOf(request);
    // Callbacks below are inline and unnamed: under tsx (keepNames), a named closure costs a
    // defineProperty call each time it is created, that is on every request.
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("error", () => response.destroy());
    request.on("end", () => {
      let call: OAuthCall;
      try {
        const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
        call = { authorization: headers.authorization, ip, form: parseForm(body) };
      } catch (error) {
        writeWire(deps, response, wireOfError(deps, error), path, ip, started);
        return;
      }
      runEndpoint(deps, endpoint, call).then(
        (wire) => writeWire(deps, response, wire, path, ip, started),
        (error: unknown) => writeWire(deps, response, wireOfError(deps, error), path, ip, started),
      );
    });
    return true;
  };
}

/** Writes an endpoint's response (unless the client went away) and its log line at info. */
function writeWire(
  deps: Deps,
  response: ServerResponse,
  wire: WireResponse,
  path: string,
  ip: string,
  started: number,
): void {
  if (response.headersSent || response.destroyed) return;
  response.writeHead(wire.status, {
    ...wire.headers,
    "content-length": String(Buffer.byteLength(wire.body)),
  });
  response.end(wire.body);
  if (deps.log.isLevelEnabled("info")) {
    deps.log.info(
      {
        req: { method: "POST", path, remoteAddress: ip },
        res: { statusCode: wire.status },
        responseTime: performance.now() - started,
      },
      "request completed",
    );
  }
}
