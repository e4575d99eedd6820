import { describe, expect, it } from "vitest";
import type { Deps } from "../../src/domain/deps.js";
import type { TokenGrant } from "../../src/domain/gateway.js";
import { ValidationCache } from "../../src/domain/validation-cache.js";

/** A cache over a fake bus and loader: `notice` plays a cache notice, `loads` counts the loader's calls. */
function cacheOf(size: number) {
  let notice: (n: { invalidate: { applicationId: string } }) => void = () => {};
  const pending = new Map<string, (grant: TokenGrant) => void>();
  const deps = {
    config: { gateway: { cacheSize: size, cacheTtl: 30 } },
    bus: {
      connected: true,
      subscribe: () => () => {},
      onCacheNotice: (listener: typeof notice) => {
        notice = listener;
        return () => {};
      },
      onConnectivity: () => () => {},
    },
  } as unknown as Deps;
  const state = { loads: 0, hold: false };
  const grantOf = (id: string) => ({ id, applicationId: id.split(":")[0] }) as TokenGrant;
  const cache = new ValidationCache(deps, (id) => {
    state.loads += 1;
    if (state.hold) return new Promise((resolve) => pending.set(id, resolve));
    return Promise.resolve(grantOf(id));
  });
  return {
    cache,
    state,
    drop: (applicationId: string) => notice({ invalidate: { applicationId } }),
    release: (id: string) => pending.get(id)?.(grantOf(id)),
    /** Whether `id` is answered from the cache, without a load. */
    cached: (id: string) => cache.peek(id) !== undefined,
  };
}

describe("ValidationCache: dropping an application's entries", () => {
  it("drops exactly that application's entries, and caches its tokens again afterwards", async () => {
    const c = cacheOf(100);
    for (const id of ["a:1", "a:2", "b:1", "b:2", "b:3"]) await c.cache.get(id);
    c.drop("a");
    expect(["a:1", "a:2", "b:1", "b:2", "b:3"].map(c.cached)).toEqual([false, false, true, true, true]);
    await c.cache.get("a:1");
    expect(c.cached("a:1")).toBe(true);
    c.drop("a");
    expect(c.cached("a:1")).toBe(false);
    expect(c.cache.size).toBe(3);
  });

  it("stays right through evictions and overwrites (the index follows the cache)", async () => {
    const c = cacheOf(3);
    for (const id of ["a:1", "a:2", "a:3", "a:4", "b:1"]) await c.cache.get(id);
    // Evicted: a:1 and a:2. Still cached: a:3, a:4, b:1.
    expect(["a:1", "a:2", "a:3", "a:4", "b:1"].map(c.cached)).toEqual([false, false, true, true, true]);
    c.drop("a");
    expect(c.cache.size).toBe(1);
    expect(c.cached("b:1")).toBe(true);
    c.drop("b");
    expect(c.cache.size).toBe(0);
  });

  it("does not cache a load that was in flight when its application was dropped", async () => {
    const c = cacheOf(100);
    c.state.hold = true;
    const raced = c.cache.get("a:1");
    const other = c.cache.get("b:1");
    c.drop("a");
    c.release("a:1");
    c.release("b:1");
    expect((await raced)?.id).toBe("a:1");
    await other;
    // The answer is given, but only the other application's is kept.
    expect([c.cached("a:1"), c.cached("b:1")]).toEqual([false, true]);
  });
});
