import { randomBytes } from "node:crypto";
import { and, asc, eq, inArray, isNull, or, type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import type { Tx } from "../db/client.js";
import {
  accessTokens,
  applications,
  type NewTokenEvent,
  type Role,
  refreshTokenFamilies,
  type TokenEventReason,
  type UserRow,
  userStoreDomains,
  users,
} from "../db/schema/index.js";
import { announceCacheNotice } from "./cache-notice.js";
import type { Deps } from "./deps.js";
import { AlreadyExistsError, ForbiddenError, NotFoundError } from "./errors.js";
import { verifyUserCredentials } from "./login.js";
import { hashPassword } from "./password.js";
import { revokeAccessTokens } from "./token.js";
import { appendTokenEvents, thenSynced } from "./token-event.js";
import { isUniqueViolation, OAUTH_CONTROL, parseInput, requireId } from "./validation.js";
import { type Auth, requireAdmin, requireViewer } from "./viewer.js";

export const ROLES = ["admin", "subscriber"] as const satisfies readonly Role[];

const Username = z
  .string()
  .min(3, "must be at least 3 characters")
  .max(64, "must be at most 64 characters")
  .regex(/^[A-Za-z0-9._@-]+$/, "may contain only letters, digits and . _ @ -");
const Roles = z
  .array(z.enum(ROLES))
  .min(1, "must name at least one role")
  .max(10)
  .transform((r) => [...new Set(r)]);
const Password = z
  .string()
  .min(8, "must be at least 8 characters")
  .max(256, "must be at most 256 characters")
  // A password POST /token would refuse (the password grant) could never be used there.
  .refine((v) => !OAUTH_CONTROL.test(v), "must not contain control characters (a tab aside)");

const CreateUserInput = z.object({
  username: Username,
  password: Password,
  roles: Roles.default(["subscriber"]),
  userStoreDomain: z
    .string()
    .max(32)
    .regex(/^[A-Z0-9_]+$/, "must be upper-case letters, digits and _")
    .default("PRIMARY"),
});

/** Admin: creates a user (default role `subscriber`, user store domain `PRIMARY`). */
export async function createUser(
  deps: Deps,
  auth: Auth,
  input: z.input<typeof CreateUserInput>,
): Promise<UserRow> {
  requireAdmin(auth);
  const data = parseInput(CreateUserInput, input);
  const [domain] = await deps.db
    .select()
    .from(userStoreDomains)
    .where(eq(userStoreDomains.name, data.userStoreDomain));
  if (!domain) throw new NotFoundError("UserStoreDomain", data.userStoreDomain);
  const passwordHash = await hashPassword(data.password);
  try {
    const [user] = await deps.db
      .insert(users)
      .values({
        username: data.username,
        passwordHash,
        roles: data.roles,
        userStoreDomain: data.userStoreDomain,
      })
      .returning();
    return user!;
  } catch (error) {
    if (isUniqueViolation(error)) throw new AlreadyExistsError("User", "username");
    throw error;
  }
}

/**
 * Admin: deletes a user. Every token it holds, and every token of its applications, is revoked
 * first (event reason `USER_DELETED`) in the same transaction.
 */
export async function deleteUser(deps: Deps, auth: Auth, id: string): Promise<UserRow> {
  const viewer = requireAdmin(auth);
  const userId = requireId("User", id);
  if (userId === viewer.id) throw new ForbiddenError("admins cannot delete their own account");
  return thenSynced(deps.bus, () =>
    deps.db.transaction(async (tx) => {
      const [user] = await tx.select().from(users).where(eq(users.id, userId)).for("update");
      if (!user) throw new NotFoundError("User", id);
      const owned = tx
        .select({ id: applications.id })
        .from(applications)
        .where(eq(applications.ownerId, userId));
      const events: NewTokenEvent[] = [];
      await revokeAccessTokens(
        tx,
        or(eq(accessTokens.userId, userId), inArray(accessTokens.applicationId, owned)),
        "USER_DELETED",
        viewer.id,
        events,
      );
      await tx.delete(users).where(eq(users.id, userId));
      // Its clients may hold no token, so no token event would tell the client caches.
      await announceCacheNotice(tx, { ownerId: userId });
      // Last: appending takes the event-order lock, after every row lock this transaction needs.
      await appendTokenEvents(tx, events);
      return user;
    }),
  );
}

/** Batch lookup for DataLoaders. */
export async function getUsersByIds(deps: Deps, ids: readonly string[]): Promise<UserRow[]> {
  return deps.db
    .select()
    .from(users)
    .where(inArray(users.id, [...ids]));
}

/**
 * First start: when there are no users, creates the admin from ADMIN_USERNAME / ADMIN_PASSWORD.
 * Returns the generated password when none was configured, for the caller to print once.
 */
export async function bootstrapAdmin(
  deps: Deps,
): Promise<{ username: string; generatedPassword?: string } | null> {
  const [{ count } = { count: 0 }] = await deps.db.select({ count: sql<number>`count(*)::int` }).from(users);
  if (count > 0) return null;
  const { username, password } = deps.config.admin;
  const generatedPassword = password ? undefined : randomBytes(18).toString("base64url");
  const passwordHash = await hashPassword(password ?? (generatedPassword as string));
  const created = await deps.db
    .insert(users)
    .values({ username, passwordHash, roles: ["admin"] })
    .onConflictDoNothing()
    .returning({ id: users.id });
  // Another instance may have won the race on PostgreSQL: then it printed the password.
  if (created.length === 0) return null;
  return generatedPassword ? { username, generatedPassword } : { username };
}

const UpdateUserInput = z.object({
  id: z.string(),
  disabled: z.boolean().nullish(),
  password: Password.nullish(),
  roles: Roles.nullish(),
});

/**
 * Admin: disables or enables a user, sets its password or roles. Disabling revokes every token
 * the user holds and its applications' tokens (USER_DISABLED); a new password revokes the user's
 * tokens (PASSWORD_CHANGED), and so do new roles (ADMIN): whoever held them must authenticate again.
 */
export async function updateUser(
  deps: Deps,
  auth: Auth,
  input: z.input<typeof UpdateUserInput>,
): Promise<UserRow> {
  const viewer = requireAdmin(auth);
  const data = parseInput(UpdateUserInput, input);
  const userId = requireId("User", data.id);
  if (userId === viewer.id && (data.disabled || (data.roles && !data.roles.includes("admin")))) {
    throw new ForbiddenError("admins cannot disable themselves or drop their own admin role");
  }
  const passwordHash = data.password ? await hashPassword(data.password) : undefined;
  return thenSynced(deps.bus, () =>
    deps.db.transaction(async (tx) => {
      const [user] = await tx.select().from(users).where(eq(users.id, userId)).for("update");
      if (!user) throw new NotFoundError("User", data.id);
      const changes: Partial<UserRow> = {};
      if (data.disabled === true && !user.disabledAt) {
        changes.disabledAt = new Date();
        const owned = tx
          .select({ id: applications.id })
          .from(applications)
          .where(eq(applications.ownerId, userId));
        await revokeUserTokens(
          tx,
          userId,
          "USER_DISABLED",
          viewer.id,
          inArray(accessTokens.applicationId, owned),
        );
        // Its clients may hold no token, so no token event would tell the client caches.
        await announceCacheNotice(tx, { ownerId: userId });
      }
      if (data.disabled === false) changes.disabledAt = null;
      if (passwordHash) {
        changes.passwordHash = passwordHash;
        changes.passwordChangedAt = new Date();
        await revokeUserTokens(tx, userId, "PASSWORD_CHANGED", viewer.id);
      }
      if (data.roles && [...data.roles].sort().join() !== [...user.roles].sort().join()) {
        changes.roles = data.roles;
        // New roles take effect at the next login: sessions (and live event streams) of the old
        // roles end now, so a demoted admin stops seeing everything.
        await revokeUserTokens(tx, userId, "ADMIN", viewer.id);
      }
      if (Object.keys(changes).length === 0) return user;
      const [updated] = await tx.update(users).set(changes).where(eq(users.id, userId)).returning();
      return updated!;
    }),
  );
}

const ChangePasswordInput = z.object({
  currentPassword: z.string().min(1).max(256),
  newPassword: Password,
});

/** The caller changes its own password; every token it holds is revoked (PASSWORD_CHANGED). */
export async function changePassword(
  deps: Deps,
  auth: Auth,
  input: z.input<typeof ChangePasswordInput>,
  source: string,
): Promise<UserRow> {
  const viewer = requireViewer(auth);
  const data = parseInput(ChangePasswordInput, input);
  await verifyUserCredentials(deps, { username: viewer.username, password: data.currentPassword }, source);
  const passwordHash = await hashPassword(data.newPassword);
  return thenSynced(deps.bus, () =>
    deps.db.transaction(async (tx) => {
      const [updated] = await tx
        .update(users)
        .set({ passwordHash, passwordChangedAt: new Date() })
        .where(eq(users.id, viewer.id))
        .returning();
      await revokeUserTokens(tx, viewer.id, "PASSWORD_CHANGED", viewer.id);
      return updated!;
    }),
  );
}

/** Revokes a user's access tokens (and `alsoWhere`) and its refresh token families, with events. */
async function revokeUserTokens(
  tx: Tx,
  userId: string,
  reason: TokenEventReason,
  actorId: string,
  alsoWhere?: SQL,
): Promise<void> {
  await tx
    .update(refreshTokenFamilies)
    .set({ revokedAt: sql`now()`, revokeReason: reason })
    .where(and(eq(refreshTokenFamilies.userId, userId), isNull(refreshTokenFamilies.revokedAt)));
  await revokeAccessTokens(
    tx,
    alsoWhere ? or(eq(accessTokens.userId, userId), alsoWhere) : eq(accessTokens.userId, userId),
    reason,
    actorId,
  );
}

/** Admin: every user, by username. */
export async function listUsers(deps: Deps, auth: Auth): Promise<UserRow[]> {
  requireAdmin(auth);
  return deps.db.select().from(users).orderBy(asc(users.username));
}
