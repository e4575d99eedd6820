import { type GraphQLClient, gql } from "graphql-request";
import { ADMIN, type TestApp } from "./app.js";

/** The selection every mutation result shares for typed errors. */
export const ERROR_FIELDS = "... on Error { __typename code message }";

export const LOGIN = gql`
  mutation Login($input: LoginInput!) {
    login(input: $input) {
      __typename
      ... on LoginPayload { accessToken refreshToken tokenType expiresIn expiresAt user { id username roles } }
      ${ERROR_FIELDS}
    }
  }
`;

export const CREATE_USER = gql`
  mutation CreateUser($input: CreateUserInput!) {
    createUser(input: $input) {
      __typename
      ... on CreateUserPayload { user { id username roles userStoreDomain } }
      ... on ValidationError { field }
      ${ERROR_FIELDS}
    }
  }
`;

export const CREATE_API = gql`
  mutation CreateApi($input: CreateApiInput!) {
    createApi(input: $input) {
      __typename
      ... on CreateApiPayload { api { id name context version scopes { name } resources { method pathPattern scopes } } }
      ... on ValidationError { field }
      ${ERROR_FIELDS}
    }
  }
`;

export const CREATE_APPLICATION = gql`
  mutation CreateApplication($input: CreateApplicationInput!) {
    createApplication(input: $input) {
      __typename
      ... on CreateApplicationPayload { application { id name throttlingTier tokenFormat owner { username } } }
      ... on ValidationError { field }
      ${ERROR_FIELDS}
    }
  }
`;

export const SUBSCRIBE = gql`
  mutation Subscribe($input: SubscribeInput!) {
    subscribe(input: $input) {
      __typename
      ... on SubscribePayload { subscription { id tier applicationId api { id context } } }
      ... on ValidationError { field }
      ${ERROR_FIELDS}
    }
  }
`;

type Result<T> = T & { __typename: string; code?: string; message?: string; field?: string };

/** Logs in and returns the access token (throws on any other outcome). */
export async function loginAs(t: TestApp, username: string, password: string): Promise<string> {
  const { login } = await t.client().request<{ login: Result<{ accessToken: string }> }>(LOGIN, {
    input: { username, password },
  });
  if (login.__typename !== "LoginPayload") throw new Error(`login failed: ${login.code}`);
  return login.accessToken;
}

export const loginAdmin = (t: TestApp) => loginAs(t, ADMIN.username, ADMIN.password);

/** Creates a user as admin and logs it in. */
export async function createSubscriber(
  t: TestApp,
  adminToken: string,
  username: string,
  password = `${username}-password`,
): Promise<{ id: string; token: string; password: string }> {
  const { createUser } = await t
    .client(adminToken)
    .request<{ createUser: Result<{ user: { id: string } }> }>(CREATE_USER, {
      input: { username, password },
    });
  if (createUser.__typename !== "CreateUserPayload") throw new Error(`createUser failed: ${createUser.code}`);
  return { id: createUser.user.id, token: await loginAs(t, username, password), password };
}

export async function createApiAs(
  client: GraphQLClient,
  input: Record<string, unknown>,
): Promise<{ id: string }> {
  const { createApi } = await client.request<{ createApi: Result<{ api: { id: string } }> }>(CREATE_API, {
    input,
  });
  if (createApi.__typename !== "CreateApiPayload") throw new Error(`createApi failed: ${createApi.message}`);
  return createApi.api;
}

export async function createApplicationAs(
  client: GraphQLClient,
  input: Record<string, unknown>,
): Promise<{ id: string; name: string }> {
  const { createApplication } = await client.request<{
    createApplication: Result<{ application: { id: string; name: string } }>;
  }>(CREATE_APPLICATION, { input });
  if (createApplication.__typename !== "CreateApplicationPayload") {
    throw new Error(`createApplication failed: ${createApplication.message}`);
  }
  return createApplication.application;
}

/**
 * POSTs a raw GraphQL-over-HTTP request (for status codes and malformed bodies). It accepts
 * `application/graphql-response+json`, so request errors (parse, validation, variables) answer 4xx.
 */
export async function postGraphQL(
  t: TestApp,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any; text: string }> {
  const response = await fetch(t.graphqlUrl, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/graphql-response+json, application/json;q=0.9",
      ...headers,
    },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, body: parsed, text };
}
