import { describe, expect, it } from "vitest";
import { pathOf } from "../../src/domain/gateway.js";

/** What WHATWG URL parsing makes of an original URI: the reference the shortcut must match. */
const viaUrl = (uri: string) => {
  try {
    return new URL(uri, "http://gateway.invalid").pathname;
  } catch {
    return null;
  }
};

describe("pathOf (the original URI's path, as URL parsing resolves it)", () => {
  it.each([
    ["/shop/v1/items", "/shop/v1/items"],
    ["/shop/v1/items/", "/shop/v1/items/"],
    ["/shop/1.0.0/items.json", "/shop/1.0.0/items.json"],
    ["/shop/.../x", "/shop/.../x"],
    ["/shop/.hidden/x", "/shop/.hidden/x"],
    ["/shop/v1/..", "/shop/"],
    ["/shop/v1/.", "/shop/v1/"],
    ["/", "/"],
    ["", "/"],
    ["/shop/v1/../admin", "/shop/admin"],
    ["/shop/v1/%2e%2e/admin", "/shop/admin"],
    ["/shop/v1/./items", "/shop/v1/items"],
    ["//evil/shop/v1", "/shop/v1"],
    ["/shop/v1/items?a=1#f", "/shop/v1/items"],
    ["/shop\\v1\\items", "/shop/v1/items"],
    ["/a b", "/a%20b"],
  ])("%j → %j", (uri, path) => {
    expect(pathOf(uri)).toBe(path);
    expect(pathOf(uri)).toBe(viaUrl(uri));
  });

  it("agrees with URL parsing on random URIs made of path characters", () => {
    const alphabet = "/./..%2e?#\\:@!$&'()*+,;=-_~aZ09 ";
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    for (let n = 0; n < 20000; n++) {
      const length = next() % 14;
      let uri = next() % 4 === 0 ? "" : "/";
      for (let i = 0; i < length; i++) uri += alphabet[next() % alphabet.length];
      expect(pathOf(uri), uri).toBe(viaUrl(uri));
    }
  });
});
