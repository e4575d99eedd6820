import { eq } from "drizzle-orm";
import { LRUCache } from "lru-cache";
import { readWithReconnect } from "../db/connection-loss.js";
import { applicationKeys, applications, consumerSecrets, users } from "../db/schema/index.js";
import type { Deps } from "./deps.js";

/** A consumer secret with its key, application and owner, as client authentication needs them. */
export interface ClientRecord {
  readonly secret: typeof consumerSecrets.$inferSelect;
  readonly key: typeof applicationKeys.$inferSelect;
  readonly app: typeof applications.$inferSelect;
  readonly ownerDomain: string;
  readonly ownerDisabledAt: Date | null;
}

interface ClientCache {
  readonly entries: LRUCache<string, ClientRecord | false>;
  /**
   * Invalidations so far (events, notices, interruptions). A read that saw this count change
   * may hold what an invalidation was about, and is not cached.
   */
  epoch: number;
}

const TTL_MS = 10_000;
const KEY_EVENTS = new Set(["KEYS_GENERATED", "SECRET_ROTATED", "VALIDITY_CHANGED"]);
const caches = new WeakMap<Deps, ClientCache>();

/**
 * Client records by consumer secret id, cached per instance so the token endpoint does not read
 * them on every request. An application's entries go the moment one of its key events (new or
 * rotated secrets, validity, regeneration, deletion, its owner disabled) arrives from any
 * instance; a read in flight at that moment answers but is not cached (it may predate the
 * change); while the event stream is interrupted the cache is bypassed. The lifetime only
 * bounds what arrives without an event.
 */
export async function lookupClient(deps: Deps, secretId: string): Promise<ClientRecord | null> {
  const cache = cacheFor(deps);
  const connected = deps.bus.connected;
  const hit = connected ? cache.entries.get(secretId) : undefined;
  if (hit !== undefined) return hit || null;
  const epoch = cache.epoch;
  const [row] = await readWithReconnect(deps.log, "client lookup", () =>
    deps.db
      .select({
        secret: consumerSecrets,
        key: applicationKeys,
        app: applications,
        ownerDomain: users.userStoreDomain,
        ownerDisabledAt: users.disabledAt,
      })
      .from(consumerSecrets)
      .innerJoin(applicationKeys, eq(applicationKeys.id, consumerSecrets.keyId))
      .innerJoin(applications, eq(applications.id, applicationKeys.applicationId))
      .innerJoin(users, eq(users.id, applications.ownerId))
      .where(eq(consumerSecrets.id, secretId)),
  );
  // A disabled owner is not cached: enabling it again sends no event.
  if (connected && epoch === cache.epoch && deps.bus.connected && !row?.ownerDisabledAt) {
    cache.entries.set(secretId, row ?? false);
  }
  return row ?? null;
}

/**
 * Records what authentication wrote of a secret (its last use, at most once a minute, and its
 * hash when made again under the current key) in the cached copy. Only the very record
 * `lookupClient` answered is replaced, keeping its lifetime: if it has gone since (its secret
 * rotated or revoked while the use was being written), the copy the caller holds predates the
 * change and must not come back.
 */
export function touchClient(
  deps: Deps,
  record: ClientRecord,
  changes: Pick<ClientRecord["secret"], "lastUsedAt"> & Partial<Pick<ClientRecord["secret"], "secretHash">>,
): void {
  const { entries } = cacheFor(deps);
  if (entries.peek(record.secret.id) !== record) return;
  entries.set(
    record.secret.id,
    { ...record, secret: { ...record.secret, ...changes } },
    { noUpdateTTL: true },
  );
}

function cacheFor(deps: Deps): ClientCache {
  const existing = caches.get(deps);
  if (existing) return existing;
  const entries = new LRUCache<string, ClientRecord | false>({ max: 50_000, ttl: TTL_MS });
  const cache: ClientCache = { entries, epoch: 0 };
  const drop = (gone: (record: ClientRecord) => boolean) => {
    cache.epoch += 1;
    for (const [id, record] of entries.entries()) {
      if (record && gone(record)) entries.delete(id);
    }
  };
  const clear = () => {
    cache.epoch += 1;
    entries.clear();
  };
  deps.bus.subscribe((event) => {
    if (event.truncated) return clear();
    const keyLevel = KEY_EVENTS.has(event.type) || event.reason === "REGENERATED";
    const ownerOrApp =
      event.reason === "APPLICATION_DELETED" ||
      event.reason === "USER_DELETED" ||
      event.reason === "USER_DISABLED";
    if (!event.application_id || !(keyLevel || ownerOrApp)) return;
    drop((record) => record.app.id === event.application_id);
  });
  deps.bus.onCacheNotice(({ invalidate }) => {
    drop(
      "ownerId" in invalidate
        ? (record) => record.app.ownerId === invalidate.ownerId
        : (record) => record.app.id === invalidate.applicationId,
    );
  });
  deps.bus.onConnectivity(clear);
  caches.set(deps, cache);
  return cache;
}
