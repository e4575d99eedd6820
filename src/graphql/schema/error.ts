import {
  AlreadyExistsError,
  BusyError,
  type DomainError,
  ForbiddenError,
  InvalidCredentialsError,
  InvalidGrantError,
  KeysAlreadyGeneratedError,
  NotFoundError,
  RateLimitedError,
  UnauthenticatedError,
  ValidationError,
} from "../../domain/errors.js";
import { builder } from "../builder.js";

/** The shared interface of every typed error in the schema. */
export const ErrorInterface = builder.interfaceRef<DomainError>("Error").implement({
  description: "An expected failure: a stable machine-readable code and a human-readable message.",
  fields: (t) => ({
    code: t.exposeString("code"),
    message: t.exposeString("message"),
  }),
});

for (const [cls, name, description] of [
  [UnauthenticatedError, "UnauthenticatedError", "No valid access token was presented."],
  [ForbiddenError, "ForbiddenError", "The caller's role does not allow this operation."],
  [InvalidCredentialsError, "InvalidCredentialsError", "Wrong username or password."],
] as const) {
  builder.objectType(cls, {
    name,
    description,
    interfaces: [ErrorInterface],
    isTypeOf: (value) => value instanceof cls,
  });
}
builder.objectType(NotFoundError, {
  name: "NotFoundError",
  description: "The resource does not exist or is not visible to the caller.",
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof NotFoundError,
  fields: (t) => ({ resource: t.exposeString("resource"), id: t.exposeString("id") }),
});
builder.objectType(AlreadyExistsError, {
  name: "AlreadyExistsError",
  description: "A unique property is already taken.",
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof AlreadyExistsError,
  fields: (t) => ({ resource: t.exposeString("resource"), field: t.exposeString("field") }),
});
builder.objectType(ValidationError, {
  name: "ValidationError",
  description: "The input breaks a rule; `field` is the dotted path of the offending input field.",
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof ValidationError,
  fields: (t) => ({ field: t.exposeString("field") }),
});

builder.objectType(KeysAlreadyGeneratedError, {
  name: "KeysAlreadyGeneratedError",
  description: "Keys of this type already exist for the application: use regenerateToken for a new token.",
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof KeysAlreadyGeneratedError,
  fields: (t) => ({ keyType: t.exposeString("keyType") }),
});

builder.objectType(RateLimitedError, {
  name: "RateLimitedError",
  description: "Too many failed credential checks: retry after `retryAfter` seconds.",
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof RateLimitedError,
  fields: (t) => ({ retryAfter: t.exposeInt("retryAfter") }),
});

builder.objectType(BusyError, {
  name: "BusyError",
  description:
    "Other work holds what the operation needs; nothing was changed: retry after `retryAfter` seconds.",
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof BusyError,
  fields: (t) => ({ retryAfter: t.exposeInt("retryAfter") }),
});

builder.objectType(InvalidGrantError, {
  name: "InvalidGrantError",
  description: "The refresh token is invalid, expired, revoked or was already used.",
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof InvalidGrantError,
});

/** Error sets shared by fields. */
export const SIGNED_IN = [UnauthenticatedError, ValidationError, NotFoundError];
export const SIGNED_IN_CREATE = [...SIGNED_IN, AlreadyExistsError];
export const ADMIN_ONLY = [UnauthenticatedError, ForbiddenError, ValidationError, NotFoundError];
export const ADMIN_ONLY_CREATE = [...ADMIN_ONLY, AlreadyExistsError];
