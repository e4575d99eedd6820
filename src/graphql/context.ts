import type { Deps } from "../domain/deps.js";
import { authenticateConsoleToken } from "../domain/token.js";
import type { Auth } from "../domain/viewer.js";

/** Per-operation context, built by one factory for HTTP and WebSocket. DataLoaders hang off it. */
export interface GraphQLContext {
  readonly deps: Deps;
  readonly auth: Auth;
  /** The caller's address, for rate limits on credential checks. */
  readonly source: string;
  /** Over WebSocket: closes the connection (slow consumers). */
  readonly closeSocket?: (code: number, reason: string) => void;
}

const BEARER = /^Bearer[ ]+([^ ]+)[ ]*$/i;

/** Authenticates `Authorization: Bearer <token>` (HTTP header or graphql-ws `connectionParams`). */
export async function authenticate(deps: Deps, authorization: unknown): Promise<Auth> {
  if (authorization === undefined || authorization === null || authorization === "") {
    return { viewer: null, failure: "missing" };
  }
  const match = typeof authorization === "string" ? BEARER.exec(authorization) : null;
  const viewer = match?.[1] ? await authenticateConsoleToken(deps, match[1]) : null;
  return viewer ? { viewer } : { viewer: null, failure: "invalid" };
}

export async function createContext(
  deps: Deps,
  authorization: unknown,
  source: string,
): Promise<GraphQLContext> {
  return { deps, auth: await authenticate(deps, authorization), source };
}
