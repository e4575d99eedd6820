import { randomBytes } from "node:crypto";
import { eq, inArray, or, sql } from "drizzle-orm";
import { z } from "zod";
import {
  accessTokens,
  applications,
  type Role,
  type UserRow,
  userStoreDomains,
  users,
} from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { AlreadyExistsError, ForbiddenError, NotFoundError } from "./errors.js";
import { hashPassword } from "./password.js";
import { revokeAccessTokens } from "./token.js";
import { isUniqueViolation, parseInput, requireId } from "./validation.js";
import { type Auth, requireAdmin } from "./viewer.js";

export const ROLES = ["admin", "subscriber"] as const satisfies readonly Role[];

const Username = z
  .string()
  .min(3, "must be at least 3 characters")
  .max(64, "must be at most 64 characters")
  .regex(/^[A-Za-z0-9._@-]+$/, "may contain only letters, digits and . _ @ -");
const Password = z
  .string()
  .min(8, "must be at least 8 characters")
  .max(256, "must be at most 256 characters");

const CreateUserInput = z.object({
  username: Username,
  password: Password,
  roles: z
    .array(z.enum(ROLES))
    .min(1, "must name at least one role")
    .max(10)
    .default(["subscriber"])
    .transform((r) => [...new Set(r)]),
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
  return deps.db.transaction(async (tx) => {
    const [user] = await tx.select().from(users).where(eq(users.id, userId)).for("update");
    if (!user) throw new NotFoundError("User", id);
    const owned = tx
      .select({ id: applications.id })
      .from(applications)
      .where(eq(applications.ownerId, userId));
    await revokeAccessTokens(
      tx,
      or(eq(accessTokens.userId, userId), inArray(accessTokens.applicationId, owned)),
      "USER_DELETED",
      viewer.id,
    );
    await tx.delete(users).where(eq(users.id, userId));
    return user;
  });
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
