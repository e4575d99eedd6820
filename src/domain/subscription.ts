import { and, asc, eq, inArray } from "drizzle-orm";
import { z } from "zod";
import type { Tx } from "../db/client.js";
import { apis, type SubscriptionRow, subscriptions, tier } from "../db/schema/index.js";
import { requireApplication } from "./application.js";
import { announceCacheNotice } from "./cache-notice.js";
import type { Deps } from "./deps.js";
import { AlreadyExistsError, NotFoundError } from "./errors.js";
import { thenSynced } from "./token-event.js";
import { isUniqueViolation, parseInput, requireId } from "./validation.js";
import { type Auth, requireViewer } from "./viewer.js";

const SubscribeInput = z.object({
  applicationId: z.string(),
  apiId: z.string(),
  tier: z.enum(tier.enumValues).default("Unlimited"),
});

/** Subscribes an application to an API at a tier; the application's tokens then reach that API. */
export async function subscribe(
  deps: Deps,
  auth: Auth,
  input: z.input<typeof SubscribeInput>,
): Promise<SubscriptionRow> {
  const viewer = requireViewer(auth);
  const data = parseInput(SubscribeInput, input);
  const app = await requireApplication(deps.db, viewer, data.applicationId);
  const apiId = requireId("Api", data.apiId);
  const [api] = await deps.db.select({ id: apis.id }).from(apis).where(eq(apis.id, apiId));
  if (!api) throw new NotFoundError("Api", data.apiId);
  try {
    return await changeSubscriptions(deps, app.id, async (tx) => {
      const [row] = await tx
        .insert(subscriptions)
        .values({ applicationId: app.id, apiId: api.id, tier: data.tier })
        .returning();
      return row!;
    });
  } catch (error) {
    if (isUniqueViolation(error)) {
      throw new AlreadyExistsError(
        "Subscription",
        "apiId",
        "the application is already subscribed to this API",
      );
    }
    throw error;
  }
}

/** Removes an application's subscription to an API. */
export async function unsubscribe(
  deps: Deps,
  auth: Auth,
  input: { applicationId: string; apiId: string },
): Promise<SubscriptionRow> {
  const viewer = requireViewer(auth);
  const app = await requireApplication(deps.db, viewer, input.applicationId);
  const apiId = requireId("Subscription", input.apiId);
  const row = await changeSubscriptions(deps, app.id, async (tx) => {
    const [deleted] = await tx
      .delete(subscriptions)
      .where(and(eq(subscriptions.applicationId, app.id), eq(subscriptions.apiId, apiId)))
      .returning();
    return deleted;
  });
  if (!row) throw new NotFoundError("Subscription", input.apiId);
  return row;
}

/**
 * Changes an application's subscriptions and tells every instance's validation cache in the same
 * transaction; answers once this instance has heard it, so that the very next gateway check here
 * sees the change (a cached grant holds the subscribed APIs), and other instances within
 * milliseconds.
 */
function changeSubscriptions<T>(
  deps: Deps,
  applicationId: string,
  change: (tx: Tx) => Promise<T>,
): Promise<T> {
  return thenSynced(deps.bus, () =>
    deps.db.transaction(async (tx) => {
      const result = await change(tx);
      await announceCacheNotice(tx, { applicationId });
      return result;
    }),
  );
}

/** Batch lookup for DataLoaders: the subscriptions of many applications in one statement. */
export const getSubscriptionsByApplicationIds = (
  deps: Deps,
  ids: readonly string[],
): Promise<SubscriptionRow[]> =>
  deps.db
    .select()
    .from(subscriptions)
    .where(inArray(subscriptions.applicationId, [...ids]))
    .orderBy(asc(subscriptions.createdAt));
