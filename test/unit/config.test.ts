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

  it("refuses encryption keys that repeat an id or take the generated key's id", () => {
    const key = (n: number) => String(n).repeat(64);
    expect(() => loadConfig({ TOKEN_ENCRYPTION_KEYS: `a:${key(1)},a:${key(2)}` })).toThrow(
      /TOKEN_ENCRYPTION_KEYS: must not repeat a key id/,
    );
    expect(() => loadConfig({ TOKEN_ENCRYPTION_KEYS: `b:${key(1)},generated:${key(2)}` })).toThrow(
      /TOKEN_ENCRYPTION_KEYS: must not use the key id "generated"/,
    );
    expect(loadConfig({ TOKEN_ENCRYPTION_KEYS: `a:${key(1)},b:${key(2)}` }).tokenEncryptionKeys).toEqual([
      { id: "a", key: key(1) },
      { id: "b", key: key(2) },
    ]);
  });

  it("reads TOKEN_HASH_KEY as a list, the current key first, and refuses a repeated key", () => {
    const key = (n: number) => String(n).repeat(64);
    expect(loadConfig({ TOKEN_HASH_KEY: key(1) }).tokenHashKeys).toEqual([key(1)]);
    expect(loadConfig({ TOKEN_HASH_KEY: `${key(1)},${key(2)}` }).tokenHashKeys).toEqual([key(1), key(2)]);
    expect(loadConfig({}).tokenHashKeys).toBeUndefined();
    expect(() => loadConfig({ TOKEN_HASH_KEY: `${"a".repeat(64)},${"A".repeat(64)}` })).toThrow(
      /TOKEN_HASH_KEY: must not repeat a key/,
    );
    // The same bytes (an odd last digit is dropped) count as the same key.
    expect(() => loadConfig({ TOKEN_HASH_KEY: `${"a".repeat(64)},${"a".repeat(64)}0` })).toThrow(
      /TOKEN_HASH_KEY: must not repeat a key/,
    );
    expect(loadConfig({}).tokenHashRehash).toBe(false);
    expect(loadConfig({ TOKEN_HASH_REHASH: "true" }).tokenHashRehash).toBe(true);
    expect(() => loadConfig({ TOKEN_HASH_KEY: `${key(1)},short` })).toThrow(
      /TOKEN_HASH_KEY: must be hex keys/,
    );
  });

  it("bounds durations: timers within setTimeout's range, seconds within ten years", () => {
    for (const [name, value] of [
      ["SWEEPER_INTERVAL_MS", "2147483648"],
      ["EVENT_HEARTBEAT_MS", "2147483648"],
      ["SHUTDOWN_TIMEOUT_MS", "1e10"],
      ["TOKEN_RETENTION", "1000000000000"],
      ["EXPIRING_SOON_WARNING", "10000000000000"],
      ["AUTH_FAILURE_WINDOW", "315360001"],
    ]) {
      expect(() => loadConfig({ [name as string]: value }), name).toThrow(new RegExp(`${name}: `));
    }
    expect(loadConfig({ SWEEPER_INTERVAL_MS: "2147483647", TOKEN_RETENTION: "315360000" })).toMatchObject({
      sweeperIntervalMs: 2147483647,
      tokenRetention: 315360000,
    });
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
