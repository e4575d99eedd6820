import { LRUCache } from "lru-cache";
import type { TokenEventNotice } from "../events/bus.js";
import type { Deps } from "./deps.js";
import type { TokenGrant } from "./gateway.js";

const MISSING = Symbol("missing");

/**
 * The seeds' "caching for key validation", made safe: entries are dropped the moment a
 * revocation event arrives from any instance (never after a lifetime), a revocation that races a
 * load leaves a tombstone so the load cannot re-insert a live entry, and while the event stream
 * is interrupted the cache is flushed and bypassed — a lost notification cannot keep a revoked
 * token alive. An application's entries go the same way when its keys or its subscriptions
 * change (a cache notice). The lifetime (VALIDATION_CACHE_TTL) only bounds what arrives with no
 * event or notice.
 */
export class ValidationCache {
  private readonly entries: LRUCache<string, TokenGrant | typeof MISSING>;
  private readonly tombstones: LRUCache<string, true>;
  private epoch = 0;

  constructor(
    private readonly deps: Deps,
    private readonly load: (id: string) => Promise<TokenGrant | null>,
  ) {
    const { cacheSize, cacheTtl } = deps.config.gateway;
    this.entries = new LRUCache({ max: cacheSize, ttl: cacheTtl * 1000 });
    this.tombstones = new LRUCache({ max: cacheSize, ttl: cacheTtl * 2000 });
    deps.bus.subscribe((event) => this.onEvent(event));
    deps.bus.onCacheNotice(({ invalidate }) => {
      if ("applicationId" in invalidate) this.dropApplication(invalidate.applicationId);
    });
    deps.bus.onConnectivity(() => this.flush());
  }

  /**
   * The token's grant when the cache can answer without I/O (null: known not to exist), or
   * undefined when it must be loaded — always, while events may be lost. The gateway's hot path.
   */
  peek(id: string): TokenGrant | null | undefined {
    const hit = this.deps.bus.connected ? this.entries.get(id) : undefined;
    return hit === MISSING ? null : hit;
  }

  /** The token's grant: from the cache, or from the database (always, while events may be lost). */
  async get(id: string): Promise<TokenGrant | null> {
    const connected = this.deps.bus.connected;
    const hit = connected ? this.entries.get(id) : undefined;
    if (hit !== undefined) return hit === MISSING ? null : hit;
    const epoch = this.epoch;
    const grant = await this.load(id);
    if (this.tombstones.has(id)) return grant && { ...grant, revoked: true };
    if (connected && epoch === this.epoch && this.deps.bus.connected) this.entries.set(id, grant ?? MISSING);
    return grant;
  }

  /** Forgets everything (the event stream was interrupted, or an admin asked). */
  flush(): void {
    this.epoch += 1;
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  private onEvent(event: TokenEventNotice): void {
    if (event.truncated) {
      // Without the row we cannot tell what changed: start over.
      this.flush();
      return;
    }
    const id = event.token_id;
    if (id && (event.type === "REVOKED" || event.type === "EXPIRED")) this.tombstones.set(id, true);
    if (id) {
      this.entries.delete(id);
      return;
    }
    // Key-level changes (validity, secrets, new keys): drop the application's cached tokens.
    if (event.application_id) this.dropApplication(event.application_id);
  }

  /**
   * Drops an application's cached tokens (its keys or subscriptions changed). A load in flight
   * may have read the application before the change: it answers, but is not cached.
   */
  private dropApplication(applicationId: string): void {
    this.epoch += 1;
    for (const [key, entry] of this.entries.entries()) {
      if (entry !== MISSING && entry.applicationId === applicationId) this.entries.delete(key);
    }
  }
}
