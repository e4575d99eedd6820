import { and, asc, eq, inArray } from "drizzle-orm";
import { z } from "zod";
import type { Tx } from "../db/client.js";
import {
  type ApplicationKeyRow,
  type ApplicationRow,
  accessTokens,
  applicationKeys,
  applications,
  type NewTokenEvent,
  tier,
  tokenFormat,
  users,
} from "../db/schema/index.js";
import { announceCacheNotice } from "./cache-notice.js";
import type { Deps } from "./deps.js";
import { AlreadyExistsError, NotFoundError } from "./errors.js";
import { revokeAccessTokens } from "./token.js";
import { appendTokenEvents, thenSynced } from "./token-event.js";
import { isUniqueViolation, isUuid, parseInput, requireId, text } from "./validation.js";
import { type Auth, isAdmin, requireViewer, type Viewer } from "./viewer.js";

const CreateApplicationInput = z.object({
  name: text(100),
  description: text(1000).nullish(),
  throttlingTier: z.enum(tier.enumValues).default("Unlimited"),
  tokenFormat: z.enum(tokenFormat.enumValues).default("OPAQUE"),
  /** Admins may create an application on behalf of another user. */
  ownerId: z.string().nullish(),
});

/** Creates an application owned by the caller (or, for admins, by `ownerId`). Names are unique per owner. */
export async function createApplication(
  deps: Deps,
  auth: Auth,
  input: z.input<typeof CreateApplicationInput>,
): Promise<ApplicationRow> {
  const viewer = requireViewer(auth);
  const data = parseInput(CreateApplicationInput, input);
  let ownerId = viewer.id;
  const requestedOwner = data.ownerId ? requireId("User", data.ownerId) : viewer.id;
  if (requestedOwner !== viewer.id) {
    // A subscriber cannot see other users: the id is simply not found for them.
    const id = requestedOwner;
    const [owner] = isAdmin(viewer)
      ? await deps.db.select({ id: users.id }).from(users).where(eq(users.id, id))
      : [];
    if (!owner) throw new NotFoundError("User", id);
    ownerId = owner.id;
  }
  try {
    const [app] = await deps.db
      .insert(applications)
      .values({
        ownerId,
        name: data.name,
        description: data.description ?? null,
        throttlingTier: data.throttlingTier,
        tokenFormat: data.tokenFormat,
      })
      .returning();
    return app!;
  } catch (error) {
    if (isUniqueViolation(error)) throw new AlreadyExistsError("Application", "name");
    throw error;
  }
}

/** Applications visible to the caller: its own, or every one for admins (optionally one owner's). */
export async function listApplications(
  deps: Deps,
  auth: Auth,
  filter: { ownerId?: string | null } = {},
): Promise<ApplicationRow[]> {
  const viewer = requireViewer(auth);
  let ownerId: string | undefined = viewer.id;
  if (isAdmin(viewer)) {
    if (!filter.ownerId) ownerId = undefined;
    else if (isUuid(filter.ownerId)) ownerId = filter.ownerId.toLowerCase();
    else return [];
  }
  return deps.db
    .select()
    .from(applications)
    .where(ownerId ? eq(applications.ownerId, ownerId) : undefined)
    .orderBy(asc(applications.createdAt), asc(applications.id));
}

/**
 * Loads an application the viewer may act on: its owner or an admin. Anyone else gets
 * NotFoundError, exactly as for an id that does not exist.
 */
export async function requireApplication(
  tx: Tx,
  viewer: Viewer,
  id: string,
  options: { forUpdate?: boolean } = {},
): Promise<ApplicationRow> {
  const appId = requireId("Application", id);
  const query = tx.select().from(applications).where(eq(applications.id, appId));
  const [app] = options.forUpdate ? await query.for("update") : await query;
  if (!app || (app.ownerId !== viewer.id && !isAdmin(viewer))) throw new NotFoundError("Application", id);
  return app;
}

export async function getApplication(deps: Deps, auth: Auth, id: string): Promise<ApplicationRow> {
  return requireApplication(deps.db, requireViewer(auth), id);
}

/** Deletes an application after revoking its tokens (event reason `APPLICATION_DELETED`). */
export async function deleteApplication(deps: Deps, auth: Auth, id: string): Promise<ApplicationRow> {
  const viewer = requireViewer(auth);
  return thenSynced(deps.bus, () =>
    deps.db.transaction(async (tx) => {
      const app = await requireApplication(tx, viewer, id, { forUpdate: true });
      const events: NewTokenEvent[] = [];
      await revokeAccessTokens(
        tx,
        eq(accessTokens.applicationId, app.id),
        "APPLICATION_DELETED",
        viewer.id,
        events,
      );
      await tx.delete(applications).where(eq(applications.id, app.id));
      // An application with no active token gets no token event: the client caches need telling.
      await announceCacheNotice(tx, { applicationId: app.id });
      // Last: appending takes the event-order lock, after every row lock this transaction needs.
      await appendTokenEvents(tx, events);
      return app;
    }),
  );
}

/** Batch lookup for DataLoaders: the keys of many applications in one statement. */
export const getKeysByApplicationIds = (deps: Deps, ids: readonly string[]): Promise<ApplicationKeyRow[]> =>
  deps.db
    .select()
    .from(applicationKeys)
    .where(inArray(applicationKeys.applicationId, [...ids]))
    .orderBy(asc(applicationKeys.keyType));

export const getApplicationKey = (tx: Tx, applicationId: string, keyType: ApplicationKeyRow["keyType"]) =>
  tx
    .select()
    .from(applicationKeys)
    .where(and(eq(applicationKeys.applicationId, applicationId), eq(applicationKeys.keyType, keyType)))
    .then((rows) => rows[0]);
