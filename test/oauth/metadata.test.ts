import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TestApp } from "../support/app.js";
import {
  clientCredentials,
  createWorld,
  discover,
  insecure,
  introspect,
  newClient,
  revoke,
  startOAuthApp,
  wire,
} from "../support/oauth.js";

let t: TestApp;
beforeAll(async () => {
  t = await startOAuthApp();
});
afterAll(() => t.stop());

describe("authorization server metadata (RFC 8414)", () => {
  it("publishes every endpoint under the issuer, which is the service's own URL", async () => {
    const response = await fetch(`${t.url}/.well-known/oauth-authorization-server`);
    expect(await wire(response)).toEqual({
      status: 200,
      headers: {
        "cache-control": "public, max-age=3600",
        // Set for the whole OAuth scope; HTTP/1.1 caches ignore Pragma when Cache-Control is present.
        pragma: "no-cache",
        "content-type": "application/json; charset=utf-8",
      },
      body: {
        issuer: t.url,
        token_endpoint: `${t.url}/token`,
        revocation_endpoint: `${t.url}/revoke`,
        introspection_endpoint: `${t.url}/introspect`,
        jwks_uri: `${t.url}/.well-known/jwks.json`,
        grant_types_supported: ["client_credentials", "password", "refresh_token"],
        response_types_supported: [],
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
        revocation_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
        introspection_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
        service_documentation: `${t.url}/graphql`,
      },
    });
  });

  it("is accepted by oauth4webapi discovery, which checks the issuer against the URL asked", async () => {
    const as = await discover(t);
    expect(as.issuer).toBe(t.url);
    // A client that expected another issuer refuses the document (the check is real).
    const elsewhere = new URL("http://127.0.0.1:1/");
    const response = await oauth.discoveryRequest(new URL(t.url), { algorithm: "oauth2", ...insecure });
    await expect(oauth.processDiscoveryResponse(elsewhere, response)).rejects.toMatchObject({
      code: oauth.JSON_ATTRIBUTE_COMPARISON,
    });
  });

  it("bases every URL on ISSUER when it differs from the listening address (behind a proxy)", async () => {
    const proxied = await startOAuthApp({ ISSUER: "https://tokens.example.com/" });
    try {
      const { body } = await wire(await fetch(`${proxied.url}/.well-known/oauth-authorization-server`));
      expect(body).toMatchObject({
        issuer: "https://tokens.example.com",
        token_endpoint: "https://tokens.example.com/token",
        revocation_endpoint: "https://tokens.example.com/revoke",
        introspection_endpoint: "https://tokens.example.com/introspect",
        jwks_uri: "https://tokens.example.com/.well-known/jwks.json",
      });
    } finally {
      await proxied.stop();
    }
  });

  it("leads a client to working token, introspection and revocation endpoints", async () => {
    const world = await createWorld(t);
    const c = await newClient(world);
    const { access_token } = await clientCredentials(world, c);
    expect(await introspect(world, c, access_token)).toMatchObject({ active: true, client_id: c.clientId });
    await revoke(world, c, access_token);
    expect(await introspect(world, c, access_token)).toEqual({ active: false });
  });
});
