import type { Deps } from "../domain/deps.js";
import { OAuthError, toOAuthError } from "./errors.js";

/** What an OAuth endpoint needs of an HTTP request, whichever server read it. */
export interface OAuthCall {
  readonly authorization: string | undefined;
  /** The caller's address (rate limits). */
  readonly ip: string;
  /** The parsed form body (see form.ts). */
  readonly form: Map<string, string>;
}

/** A successful answer: its status and, unless empty, its JSON body. */
export interface OAuthAnswer {
  readonly status: number;
  readonly body?: unknown;
}

/** One OAuth endpoint, free of any web framework: Fastify's route and the fast path both call it. */
export type OAuthEndpoint = (deps: Deps, call: OAuthCall) => Promise<OAuthAnswer>;

/** A response as written: status, headers and body text (empty for none). */
export interface WireResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** RFC 6749 §5.1: no caching of anything these endpoints answer. */
const NO_STORE = { "cache-control": "no-store", pragma: "no-cache" } as const;
const JSON_TYPE = "application/json; charset=utf-8";

/** The success response of an endpoint's answer. */
export function wireOf(answer: OAuthAnswer): WireResponse {
  if (answer.body === undefined) return { status: answer.status, headers: { ...NO_STORE }, body: "" };
  return {
    status: answer.status,
    headers: { ...NO_STORE, "content-type": JSON_TYPE },
    body: JSON.stringify(answer.body),
  };
}

/**
 * The RFC error response of a failure; unexpected failures (and a lost database connection, 503)
 * are logged and masked.
 */
export function wireOfError(deps: Deps, error: unknown): WireResponse {
  const oauth = toOAuthError(error);
  if (oauth.status >= 500 && !(error instanceof OAuthError)) {
    deps.log.error({ err: error }, "oauth endpoint failed");
  }
  return {
    status: oauth.status,
    headers: { ...NO_STORE, ...oauth.headers, "content-type": JSON_TYPE },
    body: JSON.stringify(oauth.body()),
  };
}

/** Runs an endpoint and turns its answer, or its failure, into the response to write. */
export async function runEndpoint(
  deps: Deps,
  endpoint: OAuthEndpoint,
  call: OAuthCall,
): Promise<WireResponse> {
  try {
    return wireOf(await endpoint(deps, call));
  } catch (error) {
    return wireOfError(deps, error);
  }
}
