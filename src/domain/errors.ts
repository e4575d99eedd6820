/**
 * The domain error family. Each error has a stable `code`, a public `message` safe to send to
 * clients, and an optional private `detail` for logs only. GraphQL maps them to typed errors
 * implementing `interface Error { code message }`; the OAuth surface maps them to RFC 6749 §5.2.
 */
export abstract class DomainError extends Error {
  abstract readonly code: string;
  constructor(
    message: string,
    /** Never sent to clients. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** No credentials, or credentials that are unknown, expired or revoked. */
export class UnauthenticatedError extends DomainError {
  readonly code = "UNAUTHENTICATED";
}

/** Authenticated, but the role does not allow the operation. */
export class ForbiddenError extends DomainError {
  readonly code = "FORBIDDEN";
}

/** Wrong username or password (deliberately not saying which). */
export class InvalidCredentialsError extends DomainError {
  readonly code = "INVALID_CREDENTIALS";
  constructor() {
    super("invalid username or password");
  }
}

/** The resource does not exist, or is not visible to the caller (no existence oracle). */
export class NotFoundError extends DomainError {
  readonly code = "NOT_FOUND";
  constructor(
    readonly resource: string,
    readonly id: string,
  ) {
    super(`${resource} not found`);
  }
}

/** A unique property is already taken. */
export class AlreadyExistsError extends DomainError {
  readonly code = "ALREADY_EXISTS";
  constructor(
    readonly resource: string,
    readonly field: string,
    message = `${resource} with this ${field} already exists`,
  ) {
    super(message);
  }
}

/** Input that breaks a rule: `field` is the dotted path of the offending input field. */
export class ValidationError extends DomainError {
  readonly code = "VALIDATION_FAILED";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** generateKeys for a key type that already has keys: regenerateToken is the way forward. */
export class KeysAlreadyGeneratedError extends DomainError {
  readonly code = "KEYS_ALREADY_GENERATED";
  constructor(readonly keyType: string) {
    super(`${keyType} keys already exist for this application: use regenerateToken for a new token`);
  }
}

/** RFC 6749 §5.2 invalid_grant: a refresh token or resource owner credential that is not (or no longer) good. */
export class InvalidGrantError extends DomainError {
  readonly code = "INVALID_GRANT";
}

/** RFC 6749 §5.2 invalid_scope: a scope outside what the client may have. */
export class InvalidScopeError extends DomainError {
  readonly code = "INVALID_SCOPE";
}

/** RFC 6749 §5.2 unauthorized_client: the key does not allow this grant type. */
export class UnauthorizedClientError extends DomainError {
  readonly code = "UNAUTHORIZED_CLIENT";
}

/** Too many failed credential checks: wait `retryAfter` seconds. */
export class RateLimitedError extends DomainError {
  readonly code = "RATE_LIMITED";
  constructor(readonly retryAfter: number) {
    super(`too many failed attempts: retry after ${retryAfter} seconds`);
  }
}

/**
 * The operation needs a lock that other work holds right now; nothing was changed. Retry after
 * `retryAfter` seconds.
 */
export class BusyError extends DomainError {
  readonly code = "BUSY";
  constructor(
    message: string,
    readonly retryAfter: number,
  ) {
    super(message);
  }
}

/**
 * A live event stream lost events it cannot make up for live (the event stream between instances
 * was interrupted, or an event could not be read): resume with the last cursor seen, and the
 * replay fills the gap.
 */
export class EventsInterruptedError extends DomainError {
  readonly code = "EVENTS_INTERRUPTED";
  constructor() {
    super("live events were interrupted: subscribe again with the last id seen as `after`");
  }
}
