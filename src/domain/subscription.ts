import { and, asc, eq, inArray } from "drizzle-orm";
import { z } from "zod";
import { apis, type SubscriptionRow, subscriptions, tier } from "../db/schema/index.js";
import { requireApplication } from "./application.js";
import type { Deps } from "./deps.js";
import { AlreadyExistsError, NotFoundError } from "./errors.js";
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
    const [row] = await deps.db
      .insert(subscriptions)
      .values({ applicationId: app.id, apiId: api.id, tier: data.tier })
      .returning();
    return row!;
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
  const [row] = await deps.db
    .delete(subscriptions)
    .where(and(eq(subscriptions.applicationId, app.id), eq(subscriptions.apiId, apiId)))
    .returning();
  if (!row) throw new NotFoundError("Subscription", input.apiId);
  return row;
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
