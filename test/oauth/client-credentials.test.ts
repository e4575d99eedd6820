import { gql } from "graphql-request";
import { decodeProtectedHeader } from "jose";
import * as oauth from "oauth4webapi";
import { describe, expect, it } from "vitest";
import { revokeTokens } from "../support/keys.js";
import {
  ACCESS_TOKEN,
  accessTokenRow,
  clientCredentials,
  clientCredentialsRequest,
  eventsOfTokens,
  INVALID_CLIENT_BASIC,
  idOf,
  introspect,
  newClient,
  oauthError,
  useOAuthWorld,
  wire,
} from "../support/oauth.js";

const f = useOAuthWorld();

/** expires_in is counted from the response, so it may have lost a second to rounding. */
const ONE_HOUR = [3599, 3600];

describe("client_credentials grant (RFC 6749 §4.4)", () => {
  it.each([
    ["client_secret_basic", "basic"],
    ["client_secret_post", "post"],
  ] as const)("issues an application token with %s, per §5.1", async (_name, method) => {
    const response = await clientCredentialsRequest(f.world, f.c, {}, method);
    const { status, headers, body } = await wire(response.clone());
    expect(status).toBe(200);
    expect(headers).toEqual({
      "cache-control": "no-store",
      pragma: "no-cache",
      "content-type": "application/json; charset=utf-8",
    });
    expect(body).toEqual({
      access_token: expect.stringMatching(ACCESS_TOKEN),
      token_type: "Bearer",
      expires_in: expect.any(Number),
      scope: "read write",
    });
    expect(ONE_HOUR).toContain((body as { expires_in: number }).expires_in);
    // The library accepts it as a conforming token response.
    const parsed = await oauth.processClientCredentialsResponse(f.world.as, f.c.client, response);
    expect(parsed.access_token).toBe((body as { access_token: string }).access_token);
    expect(parsed.token_type).toBe("bearer");
  });

  it("stores the token for the client's application and key, with an ISSUED event", async () => {
    const { access_token } = await clientCredentials(f.world, f.c);
    const [row] = await f.t.app.deps.database.raw(
      `select kind, client_id, application_id, application_key_id, key_type, user_id, scopes, refresh_family_id
       from access_tokens where id = $1`,
      [idOf(access_token)],
    );
    expect(row).toEqual({
      kind: "APPLICATION",
      client_id: f.c.clientId,
      application_id: f.c.applicationId,
      application_key_id: f.c.keyId,
      key_type: "PRODUCTION",
      user_id: null,
      scopes: ["read", "write"],
      refresh_family_id: null,
    });
    expect(await eventsOfTokens(f.t, [idOf(access_token)])).toEqual([
      { type: "ISSUED", reason: "CLIENT_REQUEST", token_id: idOf(access_token) },
    ]);
  });

  it("gives no refresh token, even when the key allows the refresh_token grant (§4.4.3)", async () => {
    const parsed = await clientCredentials(f.world, f.c);
    expect(parsed.refresh_token).toBeUndefined();
  });

  it.each([
    ["read", "read"],
    ["write", "write"],
    ["write read", "read write"],
    ["read read", "read"],
  ])("narrows scope=%j to exactly %j", async (requested, granted) => {
    const parsed = await clientCredentials(f.world, f.c, { scope: requested });
    expect(parsed.scope).toBe(granted);
    expect(await introspect(f.world, f.c, parsed.access_token)).toMatchObject({
      active: true,
      scope: granted,
    });
  });

  it("refuses a scope parameter of blanks only with invalid_scope (§3.3: at least one scope-token)", async () => {
    const response = await clientCredentialsRequest(f.world, f.c, { scope: "  " });
    expect(await wire(response)).toEqual(
      oauthError(400, "invalid_scope", "the scope parameter names no scope"),
    );
  });

  it("refuses a scope outside the key's scopes with invalid_scope", async () => {
    const narrow = await newClient(f.world, { scopes: ["read"] });
    const response = await clientCredentialsRequest(f.world, narrow, { scope: "read write" });
    expect(await wire(response)).toEqual(
      oauthError(400, "invalid_scope", "the scope 'write' is not available to this client"),
    );
  });

  it("omits scope for a key without scopes", async () => {
    const unscoped = await newClient(f.world, { scopes: [] });
    const response = await clientCredentialsRequest(f.world, unscoped);
    const { body } = await wire(response);
    expect(Object.keys(body as object).sort()).toEqual(["access_token", "expires_in", "token_type"]);
  });

  it("follows the key's validity period, and omits expires_in for a never-expiring token", async () => {
    const short = await newClient(f.world, { validityPeriod: 120 });
    const { expires_in } = await clientCredentials(f.world, short);
    expect([119, 120]).toContain(expires_in);

    const forever = await newClient(f.world, { validityPeriod: -1 });
    const response = await clientCredentialsRequest(f.world, forever);
    const { status, body } = await wire(response.clone());
    expect(status).toBe(200);
    expect(body).toEqual({
      access_token: expect.stringMatching(ACCESS_TOKEN),
      token_type: "Bearer",
      scope: "read write",
    });
    const parsed = await oauth.processClientCredentialsResponse(f.world.as, forever.client, response);
    expect(parsed.expires_in).toBeUndefined();
    expect((await accessTokenRow(f.t, parsed.access_token)).expires_at).toBeNull();
  });

  it("issues an RFC 9068 JWT for a JWT application, which introspects as active", async () => {
    const jwtClient = await newClient(f.world, { tokenFormat: "JWT" });
    const { access_token, scope } = await clientCredentials(f.world, jwtClient);
    expect(decodeProtectedHeader(access_token)).toMatchObject({ typ: "at+jwt" });
    expect(scope).toBe("read write");
    expect(await introspect(f.world, jwtClient, access_token)).toMatchObject({
      active: true,
      client_id: jwtClient.clientId,
      application_id: jwtClient.applicationId,
      exp: expect.any(Number),
    });
  });

  it("issues a new token on every request, leaving the earlier ones active", async () => {
    const [a, b] = await Promise.all([clientCredentials(f.world, f.c), clientCredentials(f.world, f.c)]);
    expect(idOf(a.access_token)).not.toBe(idOf(b.access_token));
    for (const { access_token } of [a, b]) {
      expect(await introspect(f.world, f.c, access_token)).toMatchObject({ active: true });
    }
  });

  it("refuses a key that does not allow client_credentials with unauthorized_client", async () => {
    const passwordOnly = await newClient(f.world, { grantTypes: ["password"] });
    const response = await clientCredentialsRequest(f.world, passwordOnly);
    expect(await wire(response)).toEqual(
      oauthError(400, "unauthorized_client", "the client is not allowed the client_credentials grant"),
    );
  });
});

describe("a client whose application is deleted", () => {
  const DELETE_APPLICATION = gql`
    mutation DeleteApplication($input: DeleteApplicationInput!) {
      deleteApplication(input: $input) { __typename }
    }
  `;

  it("is refused with invalid_client at once, even when no token of it was active to announce", async () => {
    const gone = await newClient(f.world);
    expect((await wire(await clientCredentialsRequest(f.world, gone))).status).toBe(200);
    // Nothing active left: deleting the application revokes nothing, so no token event is written.
    expect(await revokeTokens(f.t, f.world.adminToken, { applicationId: gone.applicationId })).toMatchObject({
      count: 2,
    });
    const deleted = await f.t
      .client(f.world.owner.token)
      .request<{ deleteApplication: { __typename: string } }>(DELETE_APPLICATION, {
        input: { id: gone.applicationId },
      });
    expect(deleted.deleteApplication.__typename).toBe("DeleteApplicationPayload");
    expect(await wire(await clientCredentialsRequest(f.world, gone))).toEqual(INVALID_CLIENT_BASIC);
  });

  it("fails only its own token request when a batch holds it and others' (its key deleted meanwhile)", async () => {
    const [gone, other] = [await newClient(f.world), await newClient(f.world)];
    const clientOf = async (c: typeof gone) => {
      const { authenticateClient } = await import("../../src/domain/application-key.js");
      return (await authenticateClient(f.t.app.deps, c.clientId, c.secret))!;
    };
    const { grantClientCredentials } = await import("../../src/domain/grant.js");
    const [goneClient, otherClient] = [await clientOf(gone), await clientOf(other)];
    // The client record was read before the deletion, as a cached one would be.
    await f.t.app.deps.database.raw("delete from applications where id = $1", [gone.applicationId]);
    const outcomes = await Promise.allSettled([
      grantClientCredentials(f.t.app.deps, otherClient, undefined),
      grantClientCredentials(f.t.app.deps, goneClient, undefined),
      grantClientCredentials(f.t.app.deps, otherClient, undefined),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
  });
});
