import { and, arrayContains, desc, eq, inArray, lt, or, type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import { type AccessTokenRow, accessTokens, applications, keyType, tokenKind } from "../db/schema/index.js";
import { revealStored } from "./at-rest.js";
import type { Deps } from "./deps.js";
import { NotFoundError, ValidationError } from "./errors.js";
import { findAccessToken, isActive, isTokenActive, revokeAccessTokens } from "./token.js";
import { thenSynced } from "./token-event.js";
import { isUuid, parseInput, requireId } from "./validation.js";
import { type Auth, isAdmin, requireAdmin, requireViewer, type Viewer } from "./viewer.js";

/** SQL condition: tokens the viewer may see — its own user tokens and those of its applications. */
function visibleTo(viewer: Viewer): SQL | undefined {
  if (isAdmin(viewer)) return undefined;
  const owned = sql`(select ${applications.id} from ${applications} where ${applications.ownerId} = ${viewer.id})`;
  return or(eq(accessTokens.userId, viewer.id), inArray(accessTokens.applicationId, owned));
}

const Filter = z
  .object({
    // Not empty: an empty criterion would match everything (and revokeTokens would revoke it all).
    applicationId: z.string().min(1, "must not be empty").nullish(),
    userId: z.string().min(1, "must not be empty").nullish(),
    keyType: z.enum(keyType.enumValues).nullish(),
    kind: z.enum(tokenKind.enumValues).nullish(),
    scope: z.string().min(1, "must not be empty").max(100).nullish(),
    active: z.boolean().nullish(),
  })
  .default({});
export type TokenFilter = z.input<typeof Filter>;

function filterCondition(filter: z.output<typeof Filter>): SQL | undefined {
  return and(
    // `!= null`, as revokeTokens' check for a criterion: every criterion given narrows the match.
    filter.applicationId != null
      ? eq(accessTokens.applicationId, requireId("Application", filter.applicationId))
      : undefined,
    filter.userId != null ? eq(accessTokens.userId, requireId("User", filter.userId)) : undefined,
    filter.keyType != null ? eq(accessTokens.keyType, filter.keyType) : undefined,
    filter.kind != null ? eq(accessTokens.kind, filter.kind) : undefined,
    filter.scope != null ? arrayContains(accessTokens.scopes, [filter.scope]) : undefined,
    filter.active === true ? isActive() : filter.active === false ? sql`not (${isActive()})` : undefined,
  );
}

/** A page of token metadata (never values), newest first; the cursor is (issuedAt, id). */
export async function listTokens(
  deps: Deps,
  auth: Auth,
  args: { filter?: TokenFilter | null; first?: number | null; after?: string | null },
) {
  const viewer = requireViewer(auth);
  const filter = parseInput(Filter, args.filter ?? {});
  const first = args.first ?? 50;
  if (!Number.isInteger(first) || first < 1 || first > 200)
    throw new ValidationError("first", "first must be 1 to 200");
  const after = args.after ? decodeCursor(args.after) : undefined;
  const rows = await deps.db
    .select()
    .from(accessTokens)
    .where(
      and(
        visibleTo(viewer),
        filterCondition(filter),
        after
          ? or(
              lt(accessTokens.issuedAt, after.issuedAt),
              and(eq(accessTokens.issuedAt, after.issuedAt), lt(accessTokens.id, after.id)),
            )
          : undefined,
      ),
    )
    .orderBy(desc(accessTokens.issuedAt), desc(accessTokens.id))
    .limit(first + 1);
  return { nodes: rows.slice(0, first), hasNextPage: rows.length > first };
}

export const tokenCursor = (t: AccessTokenRow) =>
  Buffer.from(`${t.issuedAt.toISOString()}|${t.id}`).toString("base64url");

/** A cursor as tokenCursor writes it: a four-digit-year ISO instant and a token id, or a ValidationError. */
function decodeCursor(cursor: string): { issuedAt: Date; id: string } {
  const [iso, id, ...rest] = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  const issuedAt = new Date(iso ?? "");
  const valid =
    rest.length === 0 &&
    id !== undefined &&
    isUuid(id) &&
    ISO_INSTANT.test(iso ?? "") &&
    !Number.isNaN(issuedAt.getTime()) &&
    issuedAt.toISOString() === iso;
  if (!valid) throw new ValidationError("after", "after is not a cursor from this list");
  return { issuedAt, id: id.toLowerCase() };
}

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Revokes the token a value names, for its owner or an admin. Revoking twice is harmless. */
export async function revokeToken(deps: Deps, auth: Auth, value: string): Promise<AccessTokenRow> {
  const viewer = requireViewer(auth);
  if (typeof value !== "string" || value.length === 0 || value.length > 8192) {
    throw new ValidationError("token", "token must be a token value");
  }
  // Outside the transaction: checking a JWT's signature may read the signing keys.
  const token = await findAccessToken(deps.db, deps, value);
  if (!token || !(await canManage(deps.db, viewer, token))) throw new NotFoundError("Token", "(value)");
  return thenSynced(deps.bus, () => deps.db.transaction((tx) => revokeOne(tx, viewer, token)));
}

/** Revokes a token by id, for its owner or an admin. */
export async function revokeTokenById(deps: Deps, auth: Auth, id: string): Promise<AccessTokenRow> {
  const viewer = requireViewer(auth);
  const tokenId = requireId("Token", id);
  return thenSynced(deps.bus, () =>
    deps.db.transaction(async (tx) => {
      const [token] = await tx
        .select()
        .from(accessTokens)
        .where(and(eq(accessTokens.id, tokenId), visibleTo(viewer)));
      if (!token) throw new NotFoundError("Token", id);
      return revokeOne(tx, viewer, token);
    }),
  );
}

/** Admin: revokes every active token matching the filter (at least one criterion); returns how many. */
export async function revokeTokens(deps: Deps, auth: Auth, input: TokenFilter): Promise<number> {
  const viewer = requireAdmin(auth);
  const filter = parseInput(Filter, input);
  const { active: _ignored, ...criteria } = filter;
  if (!Object.values(criteria).some((v) => v != null)) {
    throw new ValidationError("filter", "filter must name an application, user, key type, kind or scope");
  }
  return thenSynced(deps.bus, () =>
    deps.db.transaction(
      async (tx) => (await revokeAccessTokens(tx, filterCondition(criteria), "ADMIN", viewer.id)).length,
    ),
  );
}

/**
 * The tokens' values again, where TOKEN_PERSISTENCE=encrypt stored them (null otherwise), to those
 * entitled to them: an admin; the user a token was issued to; for an application token (no
 * user), its application's owner, who holds the consumer secret and can mint such tokens anyway.
 * A user's token issued through someone else's application stays that user's: the application's
 * owner sees its metadata, never its value (with it, they could act as that user). One read of
 * the owners for the whole list.
 */
export async function revealTokens(
  deps: Deps,
  auth: Auth,
  tokens: readonly AccessTokenRow[],
): Promise<(string | null)[]> {
  const viewer = auth.viewer;
  const sealed = tokens.some((token) => token.tokenCiphertext !== null);
  if (!viewer || !sealed) return tokens.map(() => null);
  const admin = isAdmin(viewer);
  const applicationIds = admin
    ? []
    : [...new Set(tokens.flatMap((t) => (t.userId === null && t.applicationId ? [t.applicationId] : [])))];
  const owned = new Set(
    applicationIds.length === 0
      ? []
      : (
          await deps.db
            .select({ id: applications.id })
            .from(applications)
            .where(and(inArray(applications.id, applicationIds), eq(applications.ownerId, viewer.id)))
        ).map((row) => row.id),
  );
  return tokens.map((token) => {
    const entitled =
      admin ||
      token.userId === viewer.id ||
      (token.userId === null && token.applicationId !== null && owned.has(token.applicationId));
    return entitled ? revealStored(deps, token, `access-token:${token.id}`) : null;
  });
}

async function canManage(tx: Parameters<typeof findAccessToken>[0], viewer: Viewer, token: AccessTokenRow) {
  if (isAdmin(viewer) || token.userId === viewer.id) return true;
  if (!token.applicationId) return false;
  const [app] = await tx
    .select({ ownerId: applications.ownerId })
    .from(applications)
    .where(eq(applications.id, token.applicationId));
  return app?.ownerId === viewer.id;
}

async function revokeOne(tx: Parameters<typeof findAccessToken>[0], viewer: Viewer, token: AccessTokenRow) {
  if (!isTokenActive(token)) return token;
  const reason = isAdmin(viewer) ? "ADMIN" : "OWNER";
  const [revoked] = await revokeAccessTokens(
    tx,
    and(eq(accessTokens.id, token.id), eq(accessTokens.userStoreDomain, token.userStoreDomain)),
    reason,
    viewer.id,
  );
  return revoked ?? token;
}
