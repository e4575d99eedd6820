import { z } from "zod";
import { errorCodes } from "../db/connection-loss.js";
import { NotFoundError, ValidationError } from "./errors.js";

/** Parses input with a zod schema; the first issue becomes a ValidationError naming its field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue?.path.join(".") || "input";
  throw new ValidationError(field, `${field}: ${issue?.message ?? "invalid"}`);
}

/**
 * C0 and C1 controls, the line and paragraph separators, and the bidirectional marks, overrides
 * and isolates (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), which make a name display
 * as other text than it holds ("Trojan Source").
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/**
 * The control characters RFC 6749 Appendix A allows in no OAuth parameter: all but tab (which a
 * password may hold). POST /token refuses them, and so does every password set.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds.
export const OAUTH_CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/** A trimmed, non-empty string of at most `max` characters. */
export const text = (max: number) =>
  z
    .string()
    .trim()
    .min(1, "must not be empty")
    .max(max, `must be at most ${max} characters`)
    .refine((v) => !CONTROL.test(v), "must not contain control characters");

/** A lower-case host name or IPv4 address with an optional port (the source of a RegExp, unanchored). */
export const HOST_SOURCE =
  "([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(:[0-9]{1,5})?";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a UUID in its text form (either case): the only ids that can reach a uuid column. */
export const isUuid = (id: string) => UUID.test(id);

/** An id that is not a UUID cannot exist: report it as not found, never as a database error. */
export function requireId(resource: string, id: string): string {
  if (!isUuid(id)) throw new NotFoundError(resource, id);
  return id.toLowerCase();
}

/** The SQLSTATE of a PostgreSQL error (on either driver, wrapped or not); undefined for anything else. */
export function sqlState(error: unknown): string | undefined {
  return errorCodes(error).find((code) => /^[0-9A-Z]{5}$/.test(code));
}

/** True when `error` is a PostgreSQL unique violation (on either driver). */
export const isUniqueViolation = (error: unknown) => sqlState(error) === "23505";

/** True when `error` is an integrity constraint violation (class 23): a row the database refused. */
export const isIntegrityViolation = (error: unknown) => sqlState(error)?.startsWith("23") === true;
