import { gql } from "graphql-request";
import type { TestApp } from "./app.js";
import { uniqueName } from "./fixtures.js";
import { createApiAs, createApplicationAs, ERROR_FIELDS, SUBSCRIBE } from "./graphql.js";

/** Every field of `Token`. */
export const TOKEN_FIELDS =
  "id kind format keyType applicationId userId clientId userStoreDomain scopes issuedAt expiresAt revokedAt revokeReason revokeScheduledAt active value";

export const SECRET_FIELDS = "id createdAt expiresAt lastUsedAt revokedAt active";

/** Every field of `ApplicationKey`, secrets included. */
export const KEY_FIELDS = `id applicationId keyType consumerKey allowedDomains validityPeriod scopes grantTypes secrets { ${SECRET_FIELDS} }`;

const ISSUED_FIELDS = `accessToken tokenType expiresIn token { ${TOKEN_FIELDS} }`;

/** Typed errors of the key and token mutations, with their extra fields. */
const ERRORS = `
  ... on ValidationError { field }
  ... on NotFoundError { resource id }
  ${ERROR_FIELDS}
`;

export const GENERATE_KEYS = gql`
  mutation GenerateKeys($input: GenerateKeysInput!) {
    generateKeys(input: $input) {
      __typename
      ... on GenerateKeysPayload { consumerKey consumerSecret key { ${KEY_FIELDS} } token { ${ISSUED_FIELDS} } }
      ... on KeysAlreadyGeneratedError { keyType }
      ${ERRORS}
    }
  }
`;

export const REGENERATE_TOKEN = gql`
  mutation RegenerateToken($input: RegenerateTokenInput!) {
    regenerateToken(input: $input) {
      __typename
      ... on RegenerateTokenPayload { previousTokensValidUntil key { ${KEY_FIELDS} } token { ${ISSUED_FIELDS} } }
      ${ERRORS}
    }
  }
`;

export const REGENERATE_CONSUMER_SECRET = gql`
  mutation RegenerateConsumerSecret($input: RegenerateConsumerSecretInput!) {
    regenerateConsumerSecret(input: $input) {
      __typename
      ... on RegenerateConsumerSecretPayload { consumerSecret previousSecretsValidUntil key { ${KEY_FIELDS} } }
      ${ERRORS}
    }
  }
`;

export const SET_VALIDITY_PERIOD = gql`
  mutation SetValidityPeriod($input: SetValidityPeriodInput!) {
    setValidityPeriod(input: $input) {
      __typename
      ... on SetValidityPeriodPayload { updatedTokens key { ${KEY_FIELDS} } }
      ${ERRORS}
    }
  }
`;

export const APPLICATION_KEYS = gql`
  query ApplicationKeys($id: ID!) {
    application(id: $id) {
      __typename
      ... on Application { keys { ${KEY_FIELDS} } }
      ${ERROR_FIELDS}
    }
  }
`;

export const TOKENS = gql`
  query Tokens($filter: TokenFilter, $first: Int, $after: String) {
    tokens(filter: $filter, first: $first, after: $after) {
      __typename
      ... on TokenConnection { hasNextPage endCursor edges { cursor } nodes { ${TOKEN_FIELDS} } }
      ${ERRORS}
    }
  }
`;

export const REVOKE_TOKEN = gql`
  mutation RevokeToken($input: RevokeTokenInput!) {
    revokeToken(input: $input) {
      __typename
      ... on RevokeTokenPayload { token { ${TOKEN_FIELDS} } }
      ${ERRORS}
    }
  }
`;

export const REVOKE_TOKEN_BY_ID = gql`
  mutation RevokeTokenById($input: RevokeTokenByIdInput!) {
    revokeTokenById(input: $input) {
      __typename
      ... on RevokeTokenByIdPayload { token { ${TOKEN_FIELDS} } }
      ${ERRORS}
    }
  }
`;

export const REVOKE_TOKENS = gql`
  mutation RevokeTokens($filter: TokenFilter!) {
    revokeTokens(filter: $filter) {
      __typename
      ... on RevokeTokensPayload { count }
      ${ERRORS}
    }
  }
`;

const SETTINGS_FIELDS = "applicationValidity userValidity refreshValidity maxValidity allowNeverExpiring";

export const TOKEN_SETTINGS = gql`
  query TokenSettings {
    tokenSettings {
      __typename
      ... on TokenSettings { ${SETTINGS_FIELDS} }
      ${ERRORS}
    }
  }
`;

export const UPDATE_TOKEN_SETTINGS = gql`
  mutation UpdateTokenSettings($input: UpdateTokenSettingsInput!) {
    updateTokenSettings(input: $input) {
      __typename
      ... on UpdateTokenSettingsPayload { settings { ${SETTINGS_FIELDS} } }
      ${ERRORS}
    }
  }
`;

export const ROTATE_SIGNING_KEY = gql`
  mutation RotateSigningKey {
    rotateSigningKey {
      __typename
      ... on RotateSigningKeyPayload { kid }
      ${ERROR_FIELDS}
    }
  }
`;

export const ME = gql`
  query Me {
    me {
      __typename
      ... on User { id username }
      ${ERROR_FIELDS}
    }
  }
`;

/** The GraphQL `Token` type as the tests read it. */
export interface TokenView {
  id: string;
  kind: "APPLICATION" | "USER";
  format: "OPAQUE" | "JWT";
  keyType: "PRODUCTION" | "SANDBOX" | null;
  applicationId: string | null;
  userId: string | null;
  clientId: string;
  userStoreDomain: string;
  scopes: string[];
  issuedAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  revokeReason: string | null;
  revokeScheduledAt: string | null;
  active: boolean;
  value: string | null;
}

export interface SecretView {
  id: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
  active: boolean;
}

export interface KeyView {
  id: string;
  applicationId: string;
  keyType: "PRODUCTION" | "SANDBOX";
  consumerKey: string;
  allowedDomains: string[];
  validityPeriod: number | null;
  scopes: string[];
  grantTypes: string[];
  secrets: SecretView[];
}

export interface IssuedView {
  accessToken: string;
  tokenType: string;
  expiresIn: number | null;
  token: TokenView;
}

/** Any outcome of the documents above: a payload or a typed error (fields by `__typename`). */
export interface Outcome {
  __typename: string;
  code?: string;
  message?: string;
  field?: string;
  resource?: string;
  id?: string;
  keyType?: string;
  consumerKey?: string;
  consumerSecret?: string;
  previousTokensValidUntil?: string | null;
  previousSecretsValidUntil?: string | null;
  updatedTokens?: number;
  key?: KeyView;
  token?: IssuedView | TokenView;
  count?: number;
  nodes?: TokenView[];
  edges?: { cursor: string }[];
  hasNextPage?: boolean;
  endCursor?: string | null;
  settings?: Record<string, unknown>;
  [more: string]: unknown;
}

/** A successful generateKeys / regenerateToken payload. */
export interface Issued extends Outcome {
  key: KeyView;
  token: IssuedView;
}

type Input = Record<string, unknown>;

/** Runs one document with the caller's token (none = anonymous) and returns its single root field. */
export async function run(
  t: TestApp,
  token: string | undefined,
  document: string,
  variables: Input = {},
): Promise<Outcome> {
  const data = await t.client(token).request<Record<string, Outcome>>(document, variables);
  const [result] = Object.values(data);
  return result!;
}

export const generateKeys = (t: TestApp, token: string | undefined, input: Input) =>
  run(t, token, GENERATE_KEYS, { input });
export const regenerateToken = (t: TestApp, token: string | undefined, input: Input) =>
  run(t, token, REGENERATE_TOKEN, { input });
export const regenerateConsumerSecret = (t: TestApp, token: string | undefined, input: Input) =>
  run(t, token, REGENERATE_CONSUMER_SECRET, { input });
export const setValidityPeriod = (t: TestApp, token: string | undefined, input: Input) =>
  run(t, token, SET_VALIDITY_PERIOD, { input });
export const listTokens = (t: TestApp, token: string | undefined, variables: Input = {}) =>
  run(t, token, TOKENS, variables);
export const revokeToken = (t: TestApp, token: string | undefined, value: string) =>
  run(t, token, REVOKE_TOKEN, { input: { token: value } });
export const revokeTokenById = (t: TestApp, token: string | undefined, id: string) =>
  run(t, token, REVOKE_TOKEN_BY_ID, { input: { id } });
export const revokeTokens = (t: TestApp, token: string | undefined, filter: Input) =>
  run(t, token, REVOKE_TOKENS, { filter });
export const updateTokenSettings = (t: TestApp, token: string | undefined, input: Input) =>
  run(t, token, UPDATE_TOKEN_SETTINGS, { input });

function expectPayload<T extends Outcome>(outcome: Outcome, typename: string): T {
  if (outcome.__typename !== typename) {
    throw new Error(`expected ${typename}, got ${outcome.__typename}: ${outcome.message}`);
  }
  return outcome as T;
}

/** generateKeys that must succeed. */
export const mustGenerateKeys = async (t: TestApp, token: string, input: Input) =>
  expectPayload<Issued>(await generateKeys(t, token, input), "GenerateKeysPayload");

/** regenerateToken that must succeed. */
export const mustRegenerateToken = async (t: TestApp, token: string, input: Input) =>
  expectPayload<Issued>(await regenerateToken(t, token, input), "RegenerateTokenPayload");

/** The keys of an application, as its owner (or an admin) reads them. */
export async function keysOf(t: TestApp, token: string, applicationId: string): Promise<KeyView[]> {
  const { application } = await t
    .client(token)
    .request<{ application: { keys: KeyView[] } }>(APPLICATION_KEYS, { id: applicationId });
  return application.keys;
}

/** The metadata of one token as `tokens` shows it to the caller (undefined if it is not visible). */
export async function tokenById(t: TestApp, token: string, id: string): Promise<TokenView | undefined> {
  let after: string | null | undefined;
  for (;;) {
    const page = await listTokens(t, token, { first: 200, after });
    if (page.__typename !== "TokenConnection") throw new Error(`tokens failed: ${page.message}`);
    const found = page.nodes?.find((n) => n.id === id);
    if (found || !page.hasNextPage) return found;
    after = page.endCursor;
  }
}

/** An API defining `scopes`, published by the admin under a unique context. */
export const createScopedApi = (t: TestApp, adminToken: string, scopes: readonly string[]) =>
  createApiAs(t.client(adminToken), {
    name: "Keys API",
    context: `/${uniqueName("keys")}`,
    version: "1.0.0",
    scopes: scopes.map((name) => ({ name })),
  });

/** An application of the owner, subscribed to `apiId` (when given). */
export async function createSubscribedApplication(
  t: TestApp,
  ownerToken: string,
  apiId: string | undefined,
  input: Input = {},
): Promise<{ id: string; name: string }> {
  const app = await createApplicationAs(t.client(ownerToken), { name: uniqueName("app"), ...input });
  if (apiId) await t.client(ownerToken).request(SUBSCRIBE, { input: { applicationId: app.id, apiId } });
  return app;
}

/** SQL: the same "active" rule as the service (`isActive` in src/domain/token.ts). */
export const ACTIVE_SQL =
  "revoked_at is null and (revoke_scheduled_at is null or revoke_scheduled_at > now()) and (expires_at is null or expires_at > now())";

export interface EventRow {
  type: string;
  reason: string | null;
  application_id: string | null;
  key_type: string | null;
  token_id: string | null;
}

/** The token events of an application, in order of id. */
export const eventsOf = (t: TestApp, applicationId: string) =>
  t.app.deps.database.raw<EventRow>(
    "select type, reason, application_id, key_type, token_id from token_events where application_id = $1 order by id",
    [applicationId],
  );

/** Ids of the active application tokens of a key, from the database. */
export async function activeApplicationTokenIds(t: TestApp, keyId: string): Promise<string[]> {
  const rows = await t.app.deps.database.raw<{ id: string }>(
    `select id from access_tokens where application_key_id = $1 and kind = 'APPLICATION' and ${ACTIVE_SQL} order by issued_at`,
    [keyId],
  );
  return rows.map((r) => r.id);
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Errors as the schema reports them. */
export const NO_TOKEN = {
  __typename: "UnauthenticatedError",
  code: "UNAUTHENTICATED",
  message: "authentication required: send Authorization: Bearer <access token>",
};
export const BAD_TOKEN = {
  __typename: "UnauthenticatedError",
  code: "UNAUTHENTICATED",
  message: "the access token is invalid, expired or revoked",
};
export const FORBIDDEN = {
  __typename: "ForbiddenError",
  code: "FORBIDDEN",
  message: "this operation requires the admin role",
};
export const notFound = (resource: string, id: string) => ({
  __typename: "NotFoundError",
  code: "NOT_FOUND",
  message: `${resource} not found`,
  resource,
  id,
});
export const invalid = (field: string, message: string) => ({
  __typename: "ValidationError",
  code: "VALIDATION_FAILED",
  field,
  message,
});

/**
 * POST /token with grant_type=client_credentials, the client authenticated by HTTP Basic
 * (RFC 6749 §2.3.1: each part form-urlencoded before base64).
 */
export async function clientCredentials(
  t: TestApp,
  clientId: string,
  secret: string,
): Promise<{ status: number; headers: Headers; body: any }> {
  const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString(
    "base64",
  );
  const response = await fetch(`${t.url}/token`, {
    method: "POST",
    headers: { authorization: `Basic ${basic}`, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "client_credentials" }).toString(),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}
