import { eq, sql } from "drizzle-orm";
import { z } from "zod";
import type { Tx } from "../db/client.js";
import { type UserRow, users } from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { InvalidCredentialsError } from "./errors.js";
import { burnPasswordCheck, verifyPassword } from "./password.js";
import { getTokenSettings } from "./settings.js";
import { issueUserTokens, type UserTokens } from "./user-token.js";
import { parseInput } from "./validation.js";

const Credentials = z.object({
  // Bounded before hashing: a megabyte password must not cost a megabyte of scrypt input.
  username: z.string().min(1).max(64),
  password: z.string().min(1).max(256),
});

/**
 * Checks a username and password, rate-limited per username and per source. Unknown users, wrong
 * passwords and disabled users get the same error, in the same time.
 */
export async function verifyUserCredentials(
  deps: Deps,
  input: { username: string; password: string },
  source: string,
): Promise<UserRow> {
  const { username, password } = parseInput(Credentials, input);
  const principal = `user:${username.toLowerCase()}`;
  await deps.limiter.check(principal, source);
  const [user] = await deps.db.select().from(users).where(sql`lower(${users.username}) = lower(${username})`);
  const ok = user ? await verifyPassword(password, user.passwordHash) : await burnPasswordCheck(password);
  if (!user || !ok || user.disabledAt) {
    await deps.limiter.fail(principal, source);
    throw new InvalidCredentialsError();
  }
  return user;
}

/**
 * The user `verifyUserCredentials` accepted, read again under a share lock inside the transaction
 * that issues its tokens. The password check ran outside it (scrypt takes tens of milliseconds):
 * a password reset, a disable or a deletion that committed meanwhile refuses the login here,
 * as if it had come first; one that comes after waits for the lock and then revokes what this
 * transaction issued. Without it, a login in flight during a reset kept a working session.
 */
export async function confirmVerifiedUser(tx: Tx, verified: UserRow): Promise<UserRow> {
  const [current] = await tx.select().from(users).where(eq(users.id, verified.id)).for("share");
  if (!current || current.disabledAt || current.passwordHash !== verified.passwordHash) {
    throw new InvalidCredentialsError();
  }
  return current;
}

/**
 * The Login API: a user access token and refresh token for the built-in console client.
 */
export async function login(
  deps: Deps,
  input: { username: string; password: string },
  source: string,
): Promise<UserTokens & { refreshToken: string }> {
  const verified = await verifyUserCredentials(deps, input, source);
  return deps.db.transaction(async (tx) => {
    const issued = await issueUserTokens(tx, deps, {
      user: await confirmVerifiedUser(tx, verified),
      settings: await getTokenSettings(tx),
      scopes: [],
      withRefreshToken: true,
      reason: "LOGIN",
    });
    return { ...issued, refreshToken: issued.refreshToken as string };
  });
}
