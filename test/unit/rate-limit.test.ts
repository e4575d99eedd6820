import { describe, expect, it } from "vitest";
import { RateLimitedError } from "../../src/domain/errors.js";
import { FailureLimiter } from "../../src/domain/rate-limit.js";

/** Two failures per client id, five per address, in a one-second window. */
const limiter = () => new FailureLimiter({ perPrincipal: 2, perSource: 5, window: 1 });

describe("FailureLimiter", () => {
  it("lets every attempt through while nothing has failed", async () => {
    const l = limiter();
    for (let i = 0; i < 100; i++) await expect(l.check("client:a", "10.0.0.1")).resolves.toBeUndefined();
  });

  it("refuses a client id once its failures are used up, right or wrong, until the window passes", async () => {
    const l = limiter();
    await l.fail("client:a", "10.0.0.1");
    await expect(l.check("client:a", "10.0.0.1")).resolves.toBeUndefined();
    await l.fail("client:a", "10.0.0.1");
    const refused = await l.check("client:a", "10.0.0.2").catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RateLimitedError);
    expect((refused as RateLimitedError).retryAfter).toBe(1);
    // Another client from another address is not held back by a's failures.
    await expect(l.check("client:b", "10.0.0.3")).resolves.toBeUndefined();
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    await expect(l.check("client:a", "10.0.0.1")).resolves.toBeUndefined();
  });

  it("refuses an address once its failures are used up, whichever client it names", async () => {
    const l = limiter();
    for (let i = 0; i < 5; i++) await l.fail(`client:${i}`, "10.0.0.9");
    await expect(l.check("client:new", "10.0.0.9")).rejects.toBeInstanceOf(RateLimitedError);
    await expect(l.check("client:new", "10.0.0.8")).resolves.toBeUndefined();
  });
});
