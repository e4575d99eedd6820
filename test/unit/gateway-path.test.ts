import { describe, expect, it } from "vitest";
import { byPrecedence, pathOf, resourceReadings } from "../../src/domain/gateway.js";

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
    // An encoded slash inside a segment cannot leave the API, whoever decodes it.
    ["/api/v4/projects/group%2Fproject", "/api/v4/projects/group%2Fproject"],
    ["/pkg/@scope%2fname", "/pkg/@scope%2fname"],
    ["/shop/v1/a%5Cb", "/shop/v1/a%5Cb"],
    // Characters nginx passes on raw, which change no segment.
    ["/shop/v1/a|b/[c]/{d}/^e", "/shop/v1/a|b/[c]/{d}/^e"],
    ["/shop/v1/caf\u00c3\u00a9", "/shop/v1/caf\u00c3\u00a9"],
    ["/shop/v1/items;jsessionid=1", "/shop/v1/items;jsessionid=1"],
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
    // Dot segments with parameters: Tomcat and Jetty drop the parameters, then resolve them.
    "/other/v1/..;/..;/shop/v1/items",
    "/shop/v1/.;x/items",
    "/shop/v1/..%3b/x",
    // Empty segments: `//host/…` is a host to URL parsing; some APIs merge slashes.
    "//evil/shop/v1",
    "//internal/shop/v1/items",
    "/shop//v1/items",
    "/shop/v1/items//",
    "/shop/v1/a%2F%2Fb",
    // Encoded slashes and backslashes around dots: separators to some APIs, not to others.
    "/shop/v1/items/..%2F..%2F..%2Fother%2Fv1",
    "/shop/v1/items/a%2f..%2f..%2f..%2fother",
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
    "/shop/v1/\u0000",
  ])("refuses %j", (uri) => {
    expect(pathOf(uri)).toBeNull();
  });

  it("keeps only raw paths with no dot or empty segment in any reading, on random URIs", () => {
    const alphabet = "/./..%2e%2E%2f%5c%3b;?#\\:@!$&'()*+,=-_~aZ09 ";
    let seed = 7;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    /**
     * The segments as an API may read them: %2F and %5C separate, `;` starts parameters (an
     * empty segment stays empty; one of parameters only is not).
     */
    const readings = (path: string) =>
      path
        .replace(/%2f|%5c/gi, "/")
        .split("/")
        .slice(1)
        .map((segment) => (segment === "" ? "" : segment.split(/;|%3b/i)[0]!.replace(/%2e/gi, ".") || ";"));
    let kept = 0;
    for (let n = 0; n < 20000; n++) {
      const length = next() % 14;
      let uri = next() % 8 === 0 ? "" : "/";
      for (let i = 0; i < length; i++) uri += alphabet[next() % alphabet.length];
      const path = pathOf(uri);
      if (path === null) continue;
      kept += 1;
      // What is checked is what the API gets.
      expect(path, uri).toBe(rawPath(uri));
      expect(path, uri).not.toContain("\\");
      const segments = readings(path);
      // A trailing slash aside, no segment is empty, `.` or `..`.
      if (segments.length > 1 && segments.at(-1) === "") segments.pop();
      if (path !== "/") {
        for (const segment of segments) expect(["", ".", ".."], uri).not.toContain(segment);
      }
      // Nothing URL parsing would resolve either.
      expect(viaUrl(path)?.split("/").length, uri).toBe(path.split("/").length);
    }
    // The alphabet makes many plain paths too: the property is not checked on nothing.
    expect(kept).toBeGreaterThan(300);
  });
});

describe("byPrecedence (the order an API's resources are tried in)", () => {
  it("puts literal paths before templates, templates before wildcards, and breaks ties by text", () => {
    const patterns = [
      "/*",
      "/items/{id}",
      "/items/*",
      "/items/secret",
      "/{a}/{b}",
      "/items",
      "/items/{id}/secret",
    ];
    expect(patterns.toSorted(byPrecedence)).toEqual([
      "/items/{id}/secret",
      "/items/secret",
      "/items/{id}",
      "/items",
      "/{a}/{b}",
      "/items/*",
      "/*",
    ]);
    expect(byPrecedence("/b", "/a")).toBeGreaterThan(0);
    expect(byPrecedence("/a", "/a")).toBe(0);
  });
});

describe("resourceReadings (the ways an API may read the path below its prefix)", () => {
  it.each([
    ["/items/42", ["/items/42"]],
    ["/items/%73ecr%65t", ["/items/secret"]],
    ["/items/caf%C3%A9", ["/items/caf%C3%A9"]],
    ["/items/1%2Fsecret", ["/items/1%2Fsecret", "/items/1/secret"]],
    ["/items/1%5csecret", ["/items/1%5csecret", "/items/1/secret"]],
    ["/items/secret;x", ["/items/secret;x", "/items/secret"]],
    ["/a;p/b%2Fc;q", ["/a;p/b%2Fc;q", "/a;p/b/c;q", "/a/b%2Fc", "/a/b/c"]],
  ])("reads %s as %j", (relative, readings) => {
    expect(resourceReadings(relative)).toEqual(readings);
  });
});
