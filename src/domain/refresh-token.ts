import type { Tx } from "../db/client.js";
import { refreshTokenFamilies, refreshTokens } from "../db/schema/index.js";
import { storedForm } from "./at-rest.js";
import type { Deps } from "./deps.js";
import { mintTokenValue, TOKEN_PREFIXES } from "./token-value.js";

export interface StartFamilyInput {
  readonly userId: string;
  readonly clientId: string;
  readonly userStoreDomain: string;
  readonly applicationKeyId?: string | null;
}

/** Starts a refresh token rotation family (one per login or password grant). */
export async function startRefreshFamily(tx: Tx, input: StartFamilyInput): Promise<string> {
  const [family] = await tx
    .insert(refreshTokenFamilies)
    .values({
      userId: input.userId,
      clientId: input.clientId,
      userStoreDomain: input.userStoreDomain,
      applicationKeyId: input.applicationKeyId ?? null,
    })
    .returning({ id: refreshTokenFamilies.id });
  return family!.id;
}

/** Mints a refresh token of `familyId` paired with `accessTokenId`; only its keyed hash is stored. */
export async function mintRefreshToken(
  tx: Tx,
  deps: Deps,
  input: { familyId: string; accessTokenId: string; issuedAt: Date; expiresAt: Date | null },
): Promise<string> {
  const { id, value } = mintTokenValue(TOKEN_PREFIXES.refreshToken);
  await tx.insert(refreshTokens).values({
    id,
    familyId: input.familyId,
    accessTokenId: input.accessTokenId,
    ...storedForm(deps, value, `refresh-token:${id}`),
    issuedAt: input.issuedAt,
    expiresAt: input.expiresAt,
  });
  return value;
}
