/**
 * Provisions a client through the public GraphQL API, as an admin would: log in, publish an
 * API, create an application, subscribe it, generate its production keys.
 */

export interface ClientCredentials {
  readonly clientId: string;
  readonly clientSecret: string;
}

type Payload = { __typename: string; message?: string } & Record<string, unknown>;

async function graphql(
  url: string,
  query: string,
  variables: Record<string, unknown>,
  token?: string,
): Promise<Payload> {
  const response = await fetch(`${url}/graphql`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      accept: "application/graphql-response+json",
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await response.json()) as { data?: Record<string, Payload>; errors?: unknown };
  const payload = body.data ? Object.values(body.data)[0] : undefined;
  if (!payload)
    throw new Error(`GraphQL request failed (${response.status}): ${JSON.stringify(body.errors)}`);
  return payload;
}

function expect(payload: Payload, typename: string): Payload {
  if (payload.__typename !== typename) {
    throw new Error(`expected ${typename}, got ${payload.__typename}: ${payload.message ?? ""}`);
  }
  return payload;
}

const ERROR = "... on Error { message }";

/** What the API and the key are given beyond the defaults (the token suite uses none). */
export interface ProvisionOptions {
  /** The API's resources (method, path pattern, required scopes). */
  readonly resources?: readonly { method: string; pathPattern: string; scopes: string[] }[];
  /** The scopes the key allows (its tokens get them all when the token request names none). */
  readonly keyScopes?: readonly string[];
}

/** The API every provisioned application subscribes to: `/bench/1.0.0`, defining the scope `bench`. */
export const BENCH_API = { context: "/bench", version: "1.0.0", scope: "bench" } as const;

/** Returns the consumer key and secret of a fresh application subscribed to a fresh API. */
export async function provisionClient(
  url: string,
  admin: { username: string; password: string },
  options: ProvisionOptions = {},
): Promise<ClientCredentials> {
  const login = expect(
    await graphql(
      url,
      `mutation($input: LoginInput!) { login(input: $input) { __typename ... on LoginPayload { accessToken } ${ERROR} } }`,
      { input: admin },
    ),
    "LoginPayload",
  );
  const token = login.accessToken as string;
  const api = expect(
    await graphql(
      url,
      `mutation($input: CreateApiInput!) { createApi(input: $input) { __typename ... on CreateApiPayload { api { id } } ${ERROR} } }`,
      {
        input: {
          name: "Bench API",
          context: BENCH_API.context,
          version: BENCH_API.version,
          scopes: [{ name: BENCH_API.scope }],
          ...(options.resources ? { resources: options.resources } : {}),
        },
      },
      token,
    ),
    "CreateApiPayload",
  ).api as { id: string };
  const application = expect(
    await graphql(
      url,
      `mutation($input: CreateApplicationInput!) { createApplication(input: $input) { __typename ... on CreateApplicationPayload { application { id } } ${ERROR} } }`,
      { input: { name: "bench" } },
      token,
    ),
    "CreateApplicationPayload",
  ).application as { id: string };
  expect(
    await graphql(
      url,
      `mutation($input: SubscribeInput!) { subscribe(input: $input) { __typename ${ERROR} } }`,
      { input: { applicationId: application.id, apiId: api.id } },
      token,
    ),
    "SubscribePayload",
  );
  const keys = expect(
    await graphql(
      url,
      `mutation($input: GenerateKeysInput!) { generateKeys(input: $input) { __typename ... on GenerateKeysPayload { consumerKey consumerSecret } ${ERROR} } }`,
      {
        input: {
          applicationId: application.id,
          keyType: "PRODUCTION",
          grantTypes: ["client_credentials"],
          ...(options.keyScopes ? { scopes: options.keyScopes } : {}),
        },
      },
      token,
    ),
    "GenerateKeysPayload",
  );
  return { clientId: keys.consumerKey as string, clientSecret: keys.consumerSecret as string };
}
