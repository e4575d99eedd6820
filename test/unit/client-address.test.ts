import type { IncomingMessage } from "node:http";
import { describe, expect, it } from "vitest";
import { clientAddressOf, compileProxyTrust } from "../../src/http/client-address.js";

/** A request as node:http hands it over: the socket's peer and the X-Forwarded-For header. */
const request = (peer: string, forwardedFor?: string) =>
  ({
    socket: { remoteAddress: peer },
    connection: { remoteAddress: peer },
    headers: forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor },
  }) as unknown as IncomingMessage;

describe("TRUST_PROXY", () => {
  it("trusts nobody when empty or blank: the socket's peer, whatever the header says", () => {
    for (const setting of [undefined, "", " , "]) {
      expect(compileProxyTrust(setting)).toBeUndefined();
      expect(clientAddressOf(compileProxyTrust(setting))(request("127.0.0.1", "203.0.113.7"))).toBe(
        "127.0.0.1",
      );
    }
  });

  it("takes the nearest forwarded address that is not a trusted proxy", () => {
    const addressOf = clientAddressOf(compileProxyTrust("loopback, 10.0.0.0/8"));
    // The client prepended 198.51.100.9 itself; the proxies appended the rest.
    expect(addressOf(request("127.0.0.1", "198.51.100.9, 203.0.113.7, 10.1.2.3"))).toBe("203.0.113.7");
    expect(addressOf(request("127.0.0.1"))).toBe("127.0.0.1");
    // A peer that is no trusted proxy is the client, whatever it forwards.
    expect(addressOf(request("192.0.2.1", "203.0.113.7"))).toBe("192.0.2.1");
    expect(addressOf(request("::ffff:127.0.0.1", "203.0.113.7"))).toBe("203.0.113.7");
    expect(clientAddressOf(compileProxyTrust("::1"))(request("::1", "2001:db8::5"))).toBe("2001:db8::5");
  });

  it("accepts addresses, CIDR ranges, IPv4 netmasks and the three names", () => {
    for (const setting of [
      "10.0.0.1",
      "10.0.0.0/8",
      "10.0.0.0/255.0.0.0",
      "fd00::/8",
      "::1",
      "loopback,linklocal,uniquelocal",
    ]) {
      expect(compileProxyTrust(setting), setting).toBeTypeOf("function");
    }
  });

  it("refuses hop counts, shorthand IPv4, host names and bad ranges (proxy-addr would read 1 as 0.0.0.1)", () => {
    for (const entry of [
      "1",
      "0",
      "10/8",
      "10.1",
      "true",
      "*",
      "proxy.example.com",
      "10.0.0.0/33",
      "::1/129",
      "10.0.0.0/8/8",
    ]) {
      expect(() => compileProxyTrust(`loopback, ${entry}`), entry).toThrow(`"${entry}" is not an IP address`);
    }
  });
});
