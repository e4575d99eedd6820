import type { Logger } from "pino";

/** Connection-level failures as the drivers report them (Node's socket errors, postgres.js's own). */
const SOCKET_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNREFUSED",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
]);

/**
 * True for an error that says the connection to the database was lost, not that the statement
 * failed: the server shut the backend down (57P01-57P03: a restart or failover), a connection
 * exception (class 08), or the socket closed under the driver. Drizzle wraps the driver's error:
 * its causes are looked at too.
 */
export function isConnectionLoss(error: unknown): boolean {
  let e: unknown = error;
  for (let depth = 0; e && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (SOCKET_CODES.has(code) || /^(57P0[123]|08[0-9A-Z]{3})$/.test(code))) {
      return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
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
