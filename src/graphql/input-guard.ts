import { BREAK, type DocumentNode, GraphQLError, visit } from "graphql";
import type { Plugin } from "graphql-yoga";
import { overWebSocket } from "./websocket-subscriptions.js";

/**
 * A NUL (PostgreSQL's text cannot hold one: the statement fails) or a lone surrogate (not Unicode
 * text: it would be stored as U+FFFD). With the `u` flag a surrogate pair is one code point, so
 * only a lone surrogate matches.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the NUL is what it finds.
const UNSTORABLE = /[\u0000\ud800-\udfff]/u;

const UNSTORABLE_ERROR = "a string argument holds a NUL character or is not valid Unicode text";

/** Variables nested deeper than this are refused: nothing in the schema takes more than a few levels. */
const MAX_VARIABLE_DEPTH = 32;

/**
 * What is wrong with the variables, if anything: nesting past MAX_VARIABLE_DEPTH, or a string
 * (value or key) the database cannot store. Walked with a stack of its own, so that no nesting
 * can overflow the call stack.
 */
function variablesProblem(variables: unknown): string | null {
  const pending: [unknown, number][] = [[variables, 0]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [value, depth] = next;
    if (typeof value === "string") {
      if (UNSTORABLE.test(value)) return UNSTORABLE_ERROR;
    } else if (value !== null && typeof value === "object") {
      if (depth >= MAX_VARIABLE_DEPTH)
        return `variables may be nested at most ${MAX_VARIABLE_DEPTH} levels deep`;
      for (const [key, inner] of Object.entries(value)) {
        if (UNSTORABLE.test(key)) return UNSTORABLE_ERROR;
        pending.push([inner, depth + 1]);
      }
    }
  }
  return null;
}

function unstorableLiteral(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    StringValue(node) {
      if (!UNSTORABLE.test(node.value)) return undefined;
      found = true;
      return BREAK;
    },
  });
  return found;
}

/**
 * BAD_USER_INPUT when a string literal of the document or a variable (or a variable's key) holds
 * what the database cannot store, or the variables are nested too deep; null otherwise.
 */
export function unstorableInputError(document: DocumentNode, variables: unknown): GraphQLError | null {
  const problem = unstorableLiteral(document) ? UNSTORABLE_ERROR : variablesProblem(variables);
  return problem ? new GraphQLError(problem, { extensions: { code: "BAD_USER_INPUT" } }) : null;
}

/** A request Yoga could not read: 400, and nothing of the parser's own error on the wire. */
const badRequest = (message: string) =>
  new GraphQLError(message, { extensions: { code: "BAD_REQUEST", http: { status: 400 } } });

/** The media types a GraphQL response over HTTP comes in (Yoga's result processors). */
const PRODUCED = new Set([
  "*/*",
  "application/*",
  "application/json",
  "application/graphql-response+json",
  "multipart/*",
  "multipart/mixed",
  "text/*",
  "text/event-stream",
]);

/** No Accept header, or one naming a type (or range) of PRODUCED; Yoga weighs the rest. */
function acceptable(accept: string | null): boolean {
  if (accept === null || accept.trim() === "") return true;
  return accept.split(",").some((range) => PRODUCED.has(range.split(";")[0]!.trim().toLowerCase()));
}

/** 406 with a GraphQL error body (Yoga's own 406 has the body `null`). */
const notAcceptable = () =>
  new Response(
    JSON.stringify({
      errors: [
        {
          message:
            "the Accept header names no type a GraphQL response comes in (application/graphql-response+json, application/json, multipart/mixed, text/event-stream)",
          extensions: { code: "NOT_ACCEPTABLE" },
        },
      ],
    }),
    { status: 406, headers: { "content-type": "application/json; charset=utf-8" } },
  );

/**
 * The check of an operation over HTTP, before it executes or subscribes (graphql-ws checks its
 * own operations before anything runs, see ws.ts).
 */
function guardOperation({
  args,
  setResultAndStopExecution,
}: {
  args: { contextValue: unknown; document: DocumentNode; variableValues?: unknown };
  setResultAndStopExecution: (result: { errors: GraphQLError[] }) => void;
}): void {
  if (overWebSocket(args.contextValue)) return;
  const error = unstorableInputError(args.document, args.variableValues);
  if (error) setResultAndStopExecution({ errors: [error] });
}

/**
 * Input that must never become "Unexpected error." (a 500 and an error log line):
 * - strings PostgreSQL cannot store, in literals or variables, and variables nested too deep:
 *   refused with BAD_USER_INPUT before any resolver runs (graphql-ws checks its operations
 *   itself, before anything else, see ws.ts);
 * - a request Yoga's parser cannot read (GET with `variables` or `extensions` that are not JSON
 *   objects, a POST body that is not one): 400 BAD_REQUEST, without the parser's error;
 * - a request that accepts no type a GraphQL response comes in: 406 with an error body.
 */
export function useInputGuard(): Plugin {
  return {
    onRequestParse({ request, requestParser, setRequestParser, endResponse }) {
      if (!acceptable(request.headers.get("accept"))) {
        endResponse(notAcceptable());
        return;
      }
      if (!requestParser) return;
      setRequestParser(async (request) => {
        try {
          return await requestParser(request);
        } catch {
          throw badRequest(
            request.method === "GET"
              ? "the variables and extensions parameters must be JSON objects"
              : "the request body is not a JSON object holding a GraphQL request",
          );
        }
      });
    },
    onExecute: guardOperation,
    onSubscribe: guardOperation,
  };
}
