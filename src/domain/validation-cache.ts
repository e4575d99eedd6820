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
  /**
   * The cached token ids of each application, so that dropping an application's entries costs
   * as many as it has, not a walk through the whole cache (100,000 entries: tens of ms on the
   * event loop). Kept by `get` and the cache's dispose (delete, eviction, expiry, overwrite).
   */
  private readonly byApplication = new Map<string, Set<string>>();
  /** dropApplication calls so far, and the count at each application's last one. */
  private drops = 0;
  private readonly droppedAt = new LRUCache<string, number>({ max: 10_000 });

  constructor(
    private readonly deps: Deps,
    private readonly load: (id: string) => Promise<TokenGrant | null>,
  ) {
    const { cacheSize, cacheTtl } = deps.config.gateway;
    this.entries = new LRUCache({
      max: cacheSize,
      ttl: cacheTtl * 1000,
      dispose: (entry, id) => this.unindex(id, entry),
    });
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
    const drops = this.drops;
    const grant = await this.load(id);
    if (this.tombstones.has(id)) return grant && { ...grant, revoked: true };
    // A load that raced its application's drop may hold what the drop was about: not cached.
    const raced = grant?.applicationId && (this.droppedAt.get(grant.applicationId) ?? 0) > drops;
    if (connected && epoch === this.epoch && !raced && this.deps.bus.connected) {
      this.entries.set(id, grant ?? MISSING);
      if (grant?.applicationId) {
        const ids = this.byApplication.get(grant.applicationId);
        if (ids) ids.add(id);
        else this.byApplication.set(grant.applicationId, new Set([id]));
      }
    }
    return grant;
  }

  /** Forgets everything (the event stream was interrupted, or an admin asked). */
  flush(): void {
    this.epoch += 1;
    this.entries.clear();
    this.byApplication.clear();
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
    this.drops += 1;
    this.droppedAt.set(applicationId, this.drops);
    const ids = this.byApplication.get(applicationId);
    if (!ids) return;
    this.byApplication.delete(applicationId);
    for (const id of ids) this.entries.delete(id);
  }

  private unindex(id: string, entry: TokenGrant | typeof MISSING): void {
    if (entry === MISSING || !entry.applicationId) return;
    const ids = this.byApplication.get(entry.applicationId);
    if (!ids) return;
    ids.delete(id);
    if (ids.size === 0) this.byApplication.delete(entry.applicationId);
  }
}
