import type { AuthenticatedClient, GrantType, IssuedToken } from "./application-key.js";
import { prepareApplicationToken } from "./application-key.js";
import type { Deps } from "./deps.js";
import {
  InvalidCredentialsError,
  InvalidGrantError,
  InvalidScopeError,
  UnauthorizedClientError,
  ValidationError,
} from "./errors.js";
import { confirmVerifiedUser, verifyUserCredentials } from "./login.js";
import { currentTokenSettings, getTokenSettings } from "./settings.js";
import { issueUserTokens, type UserTokens } from "./user-token.js";

/** RFC 6749 §3.3: a scope token is 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

/** The grant types a key allows; anything else is unauthorized_client. */
export function requireGrantAllowed(client: AuthenticatedClient, grant: GrantType): void {
  if (!client.key.grantTypes.includes(grant)) {
    throw new UnauthorizedClientError(`the client is not allowed the ${grant} grant`);
  }
}

/**
 * RFC 6749 §3.3 scope narrowing: the requested scopes must be a subset of what the key allows;
 * no `scope` parameter means all of them.
 */
export function narrowScopes(requested: string | undefined, allowed: readonly string[]): string[] {
  if (requested === undefined) return [...allowed];
  const scopes = [...new Set(requested.split(" ").filter((s) => s !== ""))];
  // Blanks only: no scope-token at all, which §3.3's grammar requires.
  if (scopes.length === 0) throw new InvalidScopeError("the scope parameter names no scope");
  const bad = scopes.find((s) => !SCOPE_TOKEN.test(s) || !allowed.includes(s));
  if (bad !== undefined) throw new InvalidScopeError(`the scope '${bad}' is not available to this client`);
  return scopes.sort();
}

/** client_credentials (RFC 6749 §4.4): an application token for the authenticated client. */
export async function grantClientCredentials(
  deps: Deps,
  client: AuthenticatedClient,
  scope: string | undefined,
): Promise<IssuedToken> {
  requireGrantAllowed(client, "client_credentials");
  const scopes = narrowScopes(scope, client.key.scopes);
  const prepared = await prepareApplicationToken(deps, {
    app: client.app,
    key: client.key,
    settings: await currentTokenSettings(deps),
    scopes,
    userStoreDomain: client.ownerDomain,
    reason: "CLIENT_REQUEST",
    actorId: null,
  });
  // Group commit: answered only once the batch holding this token is durable.
  await deps.writer.write(prepared);
  return { value: prepared.value, token: prepared.token };
}

/**
 * password (RFC 6749 §4.3, the Login API): a user token for the user, issued to the client, with
 * a refresh token when the key allows the refresh_token grant. RFC 9700 deprecates this grant,
 * so a key must enable it explicitly.
 */
export async function grantPassword(
  deps: Deps,
  client: AuthenticatedClient,
  credentials: { username: string; password: string },
  scope: string | undefined,
  source: string,
): Promise<UserTokens> {
  requireGrantAllowed(client, "password");
  const scopes = narrowScopes(scope, client.key.scopes);
  // RFC 6749 §5.2: invalid resource owner credentials are invalid_grant, and so are ones too
  // long to be anyone's (the parameters are there: the endpoint checked that).
  const invalidGrant = () => new InvalidGrantError(new InvalidCredentialsError().message);
  let verified: Awaited<ReturnType<typeof verifyUserCredentials>>;
  try {
    verified = await verifyUserCredentials(deps, credentials, source);
  } catch (error) {
    if (error instanceof InvalidCredentialsError || error instanceof ValidationError) throw invalidGrant();
    throw error;
  }
  if (client.app.tokenFormat === "JWT") await deps.signer.ready();
  return deps.db.transaction(async (tx) => {
    const user = await confirmVerifiedUser(tx, verified).catch((error: unknown) => {
      throw error instanceof InvalidCredentialsError ? invalidGrant() : error;
    });
    return issueUserTokens(tx, deps, {
      user,
      settings: await getTokenSettings(tx),
      client,
      scopes,
      withRefreshToken: client.key.grantTypes.includes("refresh_token"),
      reason: "CLIENT_REQUEST",
    });
  });
}
