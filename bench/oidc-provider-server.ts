/**
 * Benchmark child: the peer, panva's oidc-provider with one client_credentials client, token
 * introspection enabled (RFC 7662, at /token/introspection), and its default in-memory adapter (it persists nothing). Everything it would otherwise warn about in
 * development mode is configured (signing keys, cookie keys, findAccount, TTL, no
 * devInteractions) except the in-memory adapter, which is the point: its notice is filtered.
 * Speaks the harness IPC protocol ("ready", "stop").
 */
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { serveAsChild } from "./child-server.js";

const clientId = process.env.BENCH_CLIENT_ID;
const clientSecret = process.env.BENCH_CLIENT_SECRET;
if (!clientId || !clientSecret) throw new Error("BENCH_CLIENT_ID and BENCH_CLIENT_SECRET are required");

// The adapter notice is printed at construction and on import (Node version check): drop only
// oidc-provider's own notices, keep anything else.
const { warn, info } = console;
const quiet =
  (write: (...args: unknown[]) => void) =>
  (...args: unknown[]) => {
    if (typeof args[0] === "string" && /oidc-provider (WARNING|NOTICE)/.test(args[0])) return;
    write(...args);
  };
console.warn = quiet(warn);
console.info = quiet(info);

const { default: Provider } = await import("oidc-provider");

const server = createServer();
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const { port } = server.address() as AddressInfo;
const issuer = `http://127.0.0.1:${port}`;

// Its default id_token algorithm is RS256, so the key set must hold an RSA key.
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
    },
  ],
  features: {
    clientCredentials: { enabled: true },
    // RFC 7662, for the gateway suite's /introspect comparison (the client introspects its own tokens).
    // allowedPolicy: the default rule, configured so that it prints no "you SHOULD change it" notice.
    introspection: {
      enabled: true,
      allowedPolicy: async (_ctx, client, token) =>
        client.clientAuthMethod !== "none" || token.clientId === client.clientId,
    },
    devInteractions: { enabled: false },
  },
  // No end users in this benchmark: client_credentials never looks an account up.
  findAccount: async () => undefined,
  jwks: { keys: [{ ...privateKey.export({ format: "jwk" }), use: "sig", kid: "bench" }] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  // The same lifetime as ours (APPLICATION_TOKEN_VALIDITY default).
  ttl: { ClientCredentials: 3600 },
});
server.on("request", provider.callback());

serveAsChild(server, issuer, "the peer");
