import { sql } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import type { CacheNotice } from "../events/bus.js";
import { TOKEN_EVENTS_CHANNEL } from "./token-event.js";

/**
 * Tells every instance's caches, when `tx` commits, of a change that no token event carries (on
 * the token events' channel, so that it arrives in commit order with them).
 */
export async function announceCacheNotice(tx: Tx, invalidate: CacheNotice["invalidate"]): Promise<void> {
  await tx.execute(sql`select pg_notify(${TOKEN_EVENTS_CHANNEL}, ${JSON.stringify({ invalidate })})`);
}
