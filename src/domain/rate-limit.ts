import { RateLimiterMemory } from "rate-limiter-flexible";
import type { Config } from "../config.js";
import { RateLimitedError } from "./errors.js";

/**
 * Limits failed credential checks (client secrets, passwords) per principal (a username, or a
 * client id from one source address: see authenticateRequestClient) and per source address.
 * Only failures count, so a working client is never slowed; once a limit is reached every attempt
 * is refused until the window passes, right or wrong, so guessing cannot continue. Per instance:
 * N instances allow at most N times the limit.
 */
export class FailureLimiter {
  private readonly perPrincipal: RateLimiterMemory;
  private readonly perSource: RateLimiterMemory;
  private readonly windowMs: number;
  /** When the last failure was recorded (performance.now()); none yet: never. */
  private lastFailureAt = Number.NEGATIVE_INFINITY;

  constructor(config: Config["authFailures"]) {
    this.windowMs = config.window * 1000;
    this.perPrincipal = new RateLimiterMemory({ points: config.perPrincipal, duration: config.window });
    this.perSource = new RateLimiterMemory({ points: config.perSource, duration: config.window });
  }

  /** Throws RateLimitedError when either limit is used up. */
  async check(principal: string, source: string): Promise<void> {
    // A key's points last one window from its first failure: with no failure in the last window,
    // nothing can be blocked, and the hot path (every client authentication) reads nothing.
    if (performance.now() - this.lastFailureAt > this.windowMs) return;
    const [p, s] = await Promise.all([this.perPrincipal.get(principal), this.perSource.get(source)]);
    const blocked = [
      p && p.consumedPoints >= this.perPrincipal.points ? p : null,
      s && s.consumedPoints >= this.perSource.points ? s : null,
    ].filter((r) => r !== null);
    if (blocked.length > 0) {
      throw new RateLimitedError(
        Math.max(1, Math.ceil(Math.max(...blocked.map((r) => r.msBeforeNext)) / 1000)),
      );
    }
  }

  /** Records a failed attempt. */
  async fail(principal: string, source: string): Promise<void> {
    this.lastFailureAt = performance.now();
    // consume() rejects once the points are used up; the next check() reports it.
    await Promise.allSettled([this.perPrincipal.consume(principal), this.perSource.consume(source)]);
  }
}
