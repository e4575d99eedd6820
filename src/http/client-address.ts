import type { IncomingMessage } from "node:http";
import proxyaddr from "@fastify/proxy-addr";

/** Whether the hop at `address` (`hop` 0 being the socket's peer) is a proxy this service trusts. */
export type ProxyTrust = (address: string, hop: number) => boolean;

/**
 * The trust of TRUST_PROXY: its comma-separated addresses, CIDR ranges and the names `loopback`,
 * `linklocal` and `uniquelocal` (proxy-addr's, as Fastify reads them); undefined when the setting
 * is empty (no proxy trusted: the socket's peer is the client). Throws on an entry that is none.
 */
export function compileProxyTrust(setting: string | undefined): ProxyTrust | undefined {
  const entries = (setting ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "");
  return entries.length === 0 ? undefined : proxyaddr.compile(entries);
}

/**
 * The client's address, as the credential checks' per-source limits and the request log see it:
 * the socket's peer, or, when that peer is a trusted proxy, the nearest address of
 * X-Forwarded-For that is not one (so a client cannot choose its own address by sending the
 * header, and a load balancer does not put every client in one budget). Fastify's `request.ip`
 * gives the same with the same trust.
 */
export function clientAddressOf(trust: ProxyTrust | undefined): (request: IncomingMessage) => string {
  if (!trust) return (request) => request.socket.remoteAddress ?? "";
  return (request) => proxyaddr(request, trust) ?? "";
}
