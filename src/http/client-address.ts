import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
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
  for (const entry of entries) checkEntry(entry);
  return entries.length === 0 ? undefined : proxyaddr.compile(entries);
}

const NAMES = new Set(["loopback", "linklocal", "uniquelocal"]);

/**
 * proxy-addr also takes legacy IPv4 forms: `1` is 0.0.0.1 and `10/8` is 0.0.0.0/8, so a hop
 * count or a shorthand would be accepted and trust nobody useful. Only full addresses, with a
 * prefix length or an IPv4 netmask, and the three names pass.
 */
function checkEntry(entry: string): void {
  if (NAMES.has(entry)) return;
  const [address = "", range, ...rest] = entry.split("/");
  const family = isIP(address);
  const bits = family === 4 ? 32 : 128;
  const rangeOk =
    range === undefined ||
    (/^\d{1,3}$/.test(range) && Number(range) <= bits) ||
    (family === 4 && isIP(range) === 4);
  if (family === 0 || !rangeOk || rest.length > 0)
    throw new TypeError(`"${entry}" is not an IP address, a CIDR range or a name proxy-addr knows`);
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
