import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("loadConfig", () => {
  it("works with no configuration at all", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      env: "development",
      port: 4000,
      dataDir: "./data",
      databaseUrl: undefined,
      issuer: "http://localhost:4000",
      admin: { username: "admin", password: undefined },
      validity: { application: 3600, user: 3600, refresh: 86400 },
      graphql: { introspection: true },
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it("turns introspection off in production unless asked", () => {
    expect(loadConfig({ NODE_ENV: "production" }).graphql.introspection).toBe(false);
    expect(loadConfig({ NODE_ENV: "production", GRAPHQL_INTROSPECTION: "true" }).graphql.introspection).toBe(
      true,
    );
  });

  it("derives the issuer from the port and strips a trailing slash from ISSUER", () => {
    expect(loadConfig({ PORT: "8080" }).issuer).toBe("http://localhost:8080");
    expect(loadConfig({ ISSUER: "https://tokens.example.com/" }).issuer).toBe("https://tokens.example.com");
  });

  it("treats empty variables as unset", () => {
    expect(loadConfig({ DATABASE_URL: "", PORT: "" }).port).toBe(4000);
  });

  it("names every bad variable", () => {
    const attempt = () =>
      loadConfig({
        PORT: "eighty",
        DATABASE_URL: "mysql://x",
        USER_TOKEN_VALIDITY: "0",
        TOKEN_HASH_KEY: "short",
      });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      const message = (error as Error).message;
      for (const name of ["PORT", "DATABASE_URL", "USER_TOKEN_VALIDITY", "TOKEN_HASH_KEY"])
        expect(message).toContain(name);
      expect(message).toContain("must not be 0");
    }
  });

  it("accepts a negative validity (never expires)", () => {
    expect(loadConfig({ APPLICATION_TOKEN_VALIDITY: "-1" }).validity.application).toBe(-1);
  });
});

describe(".env.example", () => {
  it("documents every setting the service reads, with a valid default", async () => {
    const { readFile } = await import("node:fs/promises");
    const text = await readFile(new URL("../../.env.example", import.meta.url), "utf8");
    const documented = Object.fromEntries(
      text
        .split("\n")
        .filter((line) => /^[A-Z_]+=/.test(line))
        .map((line) => line.split("=", 2) as [string, string]),
    );
    const { CONFIG_KEYS } = await import("../../src/config.js");
    expect(Object.keys(documented).sort()).toEqual([...CONFIG_KEYS].sort());
    // The documented values themselves form a valid configuration.
    expect(() => loadConfig(documented)).not.toThrow();
  });
});
