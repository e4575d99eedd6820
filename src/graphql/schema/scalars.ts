import { GraphQLError, Kind } from "graphql";
import { builder } from "../builder.js";

const parseDate = (value: unknown): Date => {
  const date = typeof value === "string" ? new Date(value) : new Date(Number.NaN);
  if (Number.isNaN(date.getTime())) throw new GraphQLError("DateTime must be an ISO 8601 string");
  return date;
};

builder.scalarType("DateTime", {
  description: "An instant, as an ISO 8601 string in UTC.",
  serialize: (value) => (value instanceof Date ? value : new Date(value as string)).toISOString(),
  parseValue: parseDate,
  parseLiteral: (ast) => parseDate(ast.kind === Kind.STRING ? ast.value : undefined),
});

/** Whole seconds from now until `instant` (never negative); null for "never". */
export const secondsUntil = (instant: Date | null): number | null =>
  instant ? Math.max(0, Math.round((instant.getTime() - Date.now()) / 1000)) : null;
