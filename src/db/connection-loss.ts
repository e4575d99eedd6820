import type { Logger } from "pino";

/** A connection that broke under the driver (Node's socket errors, postgres.js's own). */
const LOST_CODES = new Set(["ECONNRESET", "EPIPE", "CONNECTION_CLOSED", "CONNECTION_DESTROYED"]);
/** A connection that could not be made (the server down, unreachable, or not answering). */
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "CONNECT_TIMEOUT",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * The string `code`s of an error and of its causes, outermost first (drizzle wraps the driver's
 * error; postgres.js puts the SQLSTATE or a connection code there).
 */
export function errorCodes(error: unknown): string[] {
  const codes: string[] = [];
  let e: unknown = error;
  for (let depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    e = (e as { cause?: unknown }).cause;
  }
  return codes;
}

/**
 * True for an error that says the connection to the database was lost, not that the statement
 * failed: the server shut the backend down (57P01-57P03: a restart or failover), a connection
 * exception (class 08), or the socket closed under the driver. Such a read may be run again at once.
 */
export function isConnectionLoss(error: unknown): boolean {
  return errorCodes(error).some((code) => LOST_CODES.has(code) || /^(57P0[123]|08[0-9A-Z]{3})$/.test(code));
}

/**
 * True when the database cannot be used right now: a lost connection, or one that could not be
 * made (refused, timed out, unreachable). Nothing is wrong with the request: 503, not 500.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  return isConnectionLoss(error) || errorCodes(error).some((code) => UNREACHABLE_CODES.has(code));
}

/** Tries of a read whose connection was lost: each may land on another connection the server closed. */
const READ_TRIES = 3;

/**
 * Runs a read, and runs it again (up to READ_TRIES in all) when it failed because its connection
 * was lost (the driver connects again for it): after a database restart or failover the first
 * reads on the old connections fail, and a read is safe to repeat. Writes are not repeated (one
 * may have committed).
 */
export async function readWithReconnect<T>(log: Logger, what: string, read: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await read();
    } catch (error) {
      if (tries >= READ_TRIES || !isConnectionLoss(error)) throw error;
      log.warn({ err: error, tries }, `${what} lost its database connection: reading again`);
    }
  }
}
