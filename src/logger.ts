import { type DestinationStream, type Logger, pino } from "pino";

/**
 * Structured JSON logs. Credentials never reach them: request logs carry the path without its
 * query string and no headers, and these paths are censored wherever they appear.
 */
export const REDACT_PATHS = [
  "password",
  "*.password",
  "token",
  "*.token",
  "accessToken",
  "refreshToken",
  "*.accessToken",
  "*.refreshToken",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "clientSecret",
  "*.clientSecret",
  "client_secret",
  "*.client_secret",
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: "[redacted]" },
      base: { service: "token-manager" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
