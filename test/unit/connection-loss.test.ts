import pino from "pino";
import { describe, expect, it } from "vitest";
import { isConnectionLoss, isDatabaseUnavailable, readWithReconnect } from "../../src/db/connection-loss.js";
import { toOAuthError } from "../../src/oauth/errors.js";

const coded = (code: string, cause?: unknown) =>
  Object.assign(new Error(code), { code }, cause ? { cause } : {});

describe("isConnectionLoss", () => {
  it.each(["57P01", "57P02", "57P03", "08006", "08P01", "ECONNRESET", "EPIPE", "CONNECTION_CLOSED"])(
    "is true for %s, also wrapped the way drizzle wraps driver errors",
    (code) => {
      expect(isConnectionLoss(coded(code))).toBe(true);
      expect(isConnectionLoss(new Error("Failed query: select 1", { cause: coded(code) }))).toBe(true);
    },
  );

  it.each(["23505", "40001", "55P03", "57014", "42P01", "CONNECTION_ENDED"])("is false for %s", (code) => {
    expect(isConnectionLoss(coded(code))).toBe(false);
    expect(isDatabaseUnavailable(coded(code))).toBe(false);
  });

  it.each(["ECONNREFUSED", "CONNECT_TIMEOUT", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND"])(
    "counts %s (no connection could be made) as the database unavailable, not as a loss to read again at once",
    (code) => {
      expect(isConnectionLoss(coded(code))).toBe(false);
      expect(isDatabaseUnavailable(new Error("Failed query", { cause: coded(code) }))).toBe(true);
    },
  );

  it("is false for errors without a code, and for non-errors", () => {
    expect(isConnectionLoss(new Error("boom"))).toBe(false);
    expect(isConnectionLoss(null)).toBe(false);
    expect(isConnectionLoss("57P01")).toBe(false);
  });
});

describe("readWithReconnect", () => {
  const log = pino({ enabled: false });
  /** A read that fails with each of `failures` in turn, then answers "rows". */
  const flaky = (failures: Error[]) => {
    let calls = 0;
    const read = async () => {
      const failure = failures[calls++];
      if (failure) throw failure;
      return "rows";
    };
    return { read, calls: () => calls };
  };

  it("reads again after a lost connection, up to three tries in all", async () => {
    const twice = flaky([coded("CONNECTION_CLOSED"), coded("57P01")]);
    await expect(readWithReconnect(log, "test read", twice.read)).resolves.toBe("rows");
    expect(twice.calls()).toBe(3);
    const thrice = flaky([coded("ECONNRESET"), coded("ECONNRESET"), coded("ECONNRESET")]);
    await expect(readWithReconnect(log, "test read", thrice.read)).rejects.toMatchObject({
      code: "ECONNRESET",
    });
    expect(thrice.calls()).toBe(3);
  });

  it("does not repeat a read that failed for any other reason", async () => {
    const failed = flaky([coded("42P01")]);
    await expect(readWithReconnect(log, "test read", failed.read)).rejects.toMatchObject({ code: "42P01" });
    expect(failed.calls()).toBe(1);
  });
});

describe("a lost database connection at an OAuth endpoint", () => {
  it.each(["CONNECTION_CLOSED", "CONNECT_TIMEOUT"])(
    "(%s) is 503 temporarily_unavailable with Retry-After, not a 500",
    (code) => {
      const error = toOAuthError(new Error("Failed query", { cause: coded(code) }));
      expect({ status: error.status, headers: error.headers, body: error.body() }).toEqual({
        status: 503,
        headers: { "retry-after": "1" },
        body: {
          error: "temporarily_unavailable",
          error_description: "the service cannot reach its database: retry shortly",
        },
      });
    },
  );
});
