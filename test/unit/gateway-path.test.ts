import { describe, expect, it } from "vitest";
import { pathOf } from "../../src/domain/gateway.js";

/** What WHATWG URL parsing makes of an original URI's path. */
const viaUrl = (uri: string) => {
  try {
    return new URL(uri, "http://gateway.invalid").pathname;
  } catch {
    return null;
  }
};

/** The URI without its query and fragment: what the API behind the gateway gets as its path. */
const rawPath = (uri: string) => uri.split(/[?#]/)[0];

describe("pathOf (the original URI's path, refused when servers could read it in different ways)", () => {
  it.each([
    ["/shop/v1/items", "/shop/v1/items"],
    ["/shop/v1/items/", "/shop/v1/items/"],
    ["/shop/1.0.0/items.json", "/shop/1.0.0/items.json"],
    ["/shop/.../x", "/shop/.../x"],
    ["/shop/..x/x", "/shop/..x/x"],
    ["/shop/.hidden/x", "/shop/.hidden/x"],
    ["/", "/"],
    ["/shop/v1/items?a=1#f", "/shop/v1/items"],
    ["/shop/v1/items?next=/../../admin", "/shop/v1/items"],
    ["/shop/v1/caf%C3%A9", "/shop/v1/caf%C3%A9"],
    ["/shop/v1/a%20b", "/shop/v1/a%20b"],
    ["/shop/v1/%2e%2e%2e", "/shop/v1/%2e%2e%2e"],
  ])("keeps %j as %j", (uri, path) => {
    expect(pathOf(uri)).toBe(path);
  });

  it.each([
    // Dot segments: resolved by URL parsing, nginx and some APIs; taken literally by others.
    "/shop/v1/..",
    "/shop/v1/.",
    "/shop/v1/../admin",
    "/other/v1/../../shop/v1/items",
    "/shop/v1/./items",
    "/shop/v1/%2e%2e/admin",
    "/shop/v1/%2E%2e/admin",
    "/shop/v1/.%2e/admin",
    "/shop/v1/%2e/items",
    // Empty segments: `//host/…` is a host to URL parsing; some APIs merge slashes.
    "//evil/shop/v1",
    "//internal/shop/v1/items",
    "/shop//v1/items",
    // Encoded slashes and backslashes: separators to some APIs, not to others.
    "/shop/v1/items/..%2F..%2F..%2Fother%2Fv1",
    "/shop/v1/items/a%2fb",
    "/shop/v1/items/..%5C..%5Cadmin",
    "/shop\\v1\\items",
    "/other/v1\\..\\..\\shop/v1/items",
    // Not a path: no leading slash, absolute form, characters a request line cannot hold raw.
    "",
    "shop/v1/items",
    "*",
    "http://evil/shop/v1/items",
    "/a b",
    "/shop/v1/%zz",
    "/shop/v1/%2",
    "/shop/v1/\u00e9",
    "/shop/v1/\u0000",
  ])("refuses %j", (uri) => {
    expect(pathOf(uri)).toBeNull();
  });

  it("keeps only paths that URL parsing leaves as they are, on random URIs made of path characters", () => {
    const alphabet = "/./..%2e%2E%2f%5c?#\\:@!$&'()*+,;=-_~aZ09 ";
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    let kept = 0;
    for (let n = 0; n < 20000; n++) {
      const length = next() % 14;
      let uri = next() % 8 === 0 ? "" : "/";
      for (let i = 0; i < length; i++) uri += alphabet[next() % alphabet.length];
      const path = pathOf(uri);
      if (path === null) continue;
      kept += 1;
      // What is checked is what the API gets, and there is nothing in it to resolve.
      expect(path, uri).toBe(rawPath(uri));
      expect(viaUrl(path), uri).toBe(path);
      expect(path, uri).not.toMatch(/\/\/|%2f|%5c|\\/i);
    }
    // The alphabet makes many plain paths too: the property is not checked on nothing.
    expect(kept).toBeGreaterThan(300);
  });
});
