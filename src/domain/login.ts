import { sql } from "drizzle-orm";
import { z } from "zod";
import { type UserRow, users } from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { InvalidCredentialsError } from "./errors.js";
import { burnPasswordCheck, verifyPassword } from "./password.js";
import { mintRefreshToken, startRefreshFamily } from "./refresh-token.js";
import { expiryFor, getTokenSettings } from "./settings.js";
import { CONSOLE_CLIENT_ID, issueAccessToken } from "./token.js";
import { parseInput } from "./validation.js";

export interface IssuedUserTokens {
  readonly accessToken: string;
  readonly refreshToken: string;
  readonly expiresAt: Date | null;
  readonly user: UserRow;
}

const LoginInput = z.object({
  // Bounded before hashing: a megabyte password must not cost a megabyte of scrypt input.
  username: z.string().min(1).max(64),
  password: z.string().min(1).max(256),
});

/**
 * The Login API: checks a username and password and issues a user access token and refresh token
 * for the built-in console client. Unknown users, wrong passwords and disabled users get the same
 * error, in the same time.
 */
export async function login(
  deps: Deps,
  input: { username: string; password: string },
): Promise<IssuedUserTokens> {
  const { username, password } = parseInput(LoginInput, input);
  const [user] = await deps.db.select().from(users).where(sql`lower(${users.username}) = lower(${username})`);
  const ok = user ? await verifyPassword(password, user.passwordHash) : await burnPasswordCheck(password);
  if (!user || !ok || user.disabledAt) throw new InvalidCredentialsError();
  return deps.db.transaction(async (tx) => {
    const settings = await getTokenSettings(tx);
    const issuedAt = new Date();
    const base = { userId: user.id, clientId: CONSOLE_CLIENT_ID, userStoreDomain: user.userStoreDomain };
    const familyId = await startRefreshFamily(tx, base);
    const { value, token } = await issueAccessToken(tx, deps, {
      ...base,
      kind: "USER",
      scopes: [],
      issuedAt,
      expiresAt: expiryFor(settings.userValidity, issuedAt),
      refreshFamilyId: familyId,
      reason: "LOGIN",
      actorId: user.id,
    });
    const refreshToken = await mintRefreshToken(tx, deps, {
      familyId,
      accessTokenId: token.id,
      issuedAt,
      expiresAt: expiryFor(settings.refreshValidity, issuedAt),
    });
    return { accessToken: value, refreshToken, expiresAt: token.expiresAt, user };
  });
}
