import { eq } from "drizzle-orm";
import { LRUCache } from "lru-cache";
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

const TTL_MS = 10_000;
const KEY_EVENTS = new Set(["KEYS_GENERATED", "SECRET_ROTATED", "VALIDITY_CHANGED"]);
const caches = new WeakMap<Deps, LRUCache<string, ClientRecord | false>>();

/**
 * Client records by consumer secret id, cached per instance so the token endpoint does not read
 * them on every request. An application's entries go the moment one of its key events (new or
 * rotated secrets, validity, regeneration, deletion, its owner disabled) arrives from any
 * instance; while the event stream is interrupted the cache is bypassed. The lifetime only
 * bounds what arrives without an event.
 */
export async function lookupClient(deps: Deps, secretId: string): Promise<ClientRecord | null> {
  const cache = cacheFor(deps);
  const connected = deps.bus.connected;
  const hit = connected ? cache.get(secretId) : undefined;
  if (hit !== undefined) return hit || null;
  const [row] = await deps.db
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
    .where(eq(consumerSecrets.id, secretId));
  // A disabled owner is not cached: enabling it again sends no event.
  if (connected && deps.bus.connected && !row?.ownerDisabledAt) cache.set(secretId, row ?? false);
  return row ?? null;
}

/** Records a secret's last use in the cached copy (the database is written at most once a minute). */
export function touchClient(deps: Deps, record: ClientRecord, at: Date): void {
  cacheFor(deps).set(record.secret.id, { ...record, secret: { ...record.secret, lastUsedAt: at } });
}

function cacheFor(deps: Deps): LRUCache<string, ClientRecord | false> {
  let cache = caches.get(deps);
  if (cache) return cache;
  const created = new LRUCache<string, ClientRecord | false>({ max: 50_000, ttl: TTL_MS });
  deps.bus.subscribe((event) => {
    if (event.truncated) return created.clear();
    const keyLevel = KEY_EVENTS.has(event.type) || event.reason === "REGENERATED";
    const ownerOrApp =
      event.reason === "APPLICATION_DELETED" ||
      event.reason === "USER_DELETED" ||
      event.reason === "USER_DISABLED";
    if (!event.application_id || !(keyLevel || ownerOrApp)) return;
    for (const [id, record] of created.entries()) {
      if (record && record.app.id === event.application_id) created.delete(id);
    }
  });
  deps.bus.onCacheNotice(({ invalidate }) => {
    const gone =
      "ownerId" in invalidate
        ? (record: ClientRecord) => record.app.ownerId === invalidate.ownerId
        : (record: ClientRecord) => record.app.id === invalidate.applicationId;
    for (const [id, record] of created.entries()) {
      if (record && gone(record)) created.delete(id);
    }
  });
  deps.bus.onConnectivity(() => created.clear());
  caches.set(deps, created);
  cache = created;
  return cache;
}
