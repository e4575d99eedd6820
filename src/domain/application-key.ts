import { randomBytes } from "node:crypto";
import { and, eq, gt, inArray, isNull, or, sql } from "drizzle-orm";
import { z } from "zod";
import type { Tx } from "../db/client.js";
import {
  type AccessTokenRow,
  type ApplicationKeyRow,
  type ApplicationRow,
  accessTokens,
  applicationKeys,
  consumerSecrets,
  type KeyType,
  keyType,
  type NewTokenEvent,
  type TokenEventReason,
  type TokenEventType,
  users,
} from "../db/schema/index.js";
import { requireApplication } from "./application.js";
import { announceCacheNotice } from "./cache-notice.js";
import { type ClientRecord, lookupClient, touchClient } from "./client-cache.js";
import type { Deps } from "./deps.js";
import { KeysAlreadyGeneratedError, NotFoundError } from "./errors.js";
import { requireScopesWithin, subscribedScopes } from "./scope.js";
import {
  checkValidity,
  effectiveValidity,
  expiryFor,
  getTokenSettings,
  type TokenSettings,
} from "./settings.js";
import { isActive, type PreparedToken, prepareAccessToken, revokeAccessTokens } from "./token.js";
import { appendTokenEvents, thenSynced, tokenEventFor } from "./token-event.js";
import {
  hashTokenValue,
  mintTokenValue,
  parseTokenValue,
  TOKEN_PREFIXES,
  VerifiedValues,
} from "./token-value.js";
import { HOST_SOURCE, isUniqueViolation, parseInput } from "./validation.js";
import { type Auth, requireViewer } from "./viewer.js";

export const GRANT_TYPES = ["client_credentials", "password", "refresh_token"] as const;
export type GrantType = (typeof GRANT_TYPES)[number];
// RFC 9700 §2.4 deprecates the password grant: it must be enabled per key.
const DEFAULT_GRANT_TYPES: GrantType[] = ["client_credentials", "refresh_token"];
const MAX_GRACE_PERIOD = 30 * 86400;

const ALLOWED_DOMAIN = new RegExp(`^(\\*\\.)?${HOST_SOURCE}$`);

/** Allowed domains: host names (optionally `*.` wildcards and a port); empty or `ALL` = every domain. */
const AllowedDomains = z
  .array(z.string().trim().max(253, "must be at most 253 characters"))
  .max(100, "must list at most 100 domains")
  .transform((list, ctx) => {
    const domains = [...new Set(list.map((d) => (d.toUpperCase() === "ALL" ? "ALL" : d.toLowerCase())))];
    if (domains.includes("ALL") && domains.length > 1) {
      ctx.addIssue({ code: "custom", message: "ALL cannot be combined with other domains" });
      return z.NEVER;
    }
    const bad = domains.find((d) => d !== "ALL" && !ALLOWED_DOMAIN.test(d));
    if (bad !== undefined) {
      ctx.addIssue({ code: "custom", message: `${JSON.stringify(bad)} is not a domain name` });
      return z.NEVER;
    }
    return domains;
  });

const ScopeList = z.array(z.string().max(100)).max(100);
const GracePeriod = z
  .number()
  .int()
  .min(0, "must not be negative")
  .max(MAX_GRACE_PERIOD, `must be at most ${MAX_GRACE_PERIOD} seconds`);

const KeyRef = { applicationId: z.string(), keyType: z.enum(keyType.enumValues) };

const GenerateKeysInput = z.object({
  ...KeyRef,
  validityPeriod: z.number().int().nullish(),
  allowedDomains: AllowedDomains.nullish(),
  scopes: ScopeList.nullish(),
  grantTypes: z.array(z.enum(GRANT_TYPES)).min(1, "must allow at least one grant type").nullish(),
});

const RegenerateTokenInput = z.object({
  ...KeyRef,
  validityPeriod: z.number().int().nullish(),
  allowedDomains: AllowedDomains.nullish(),
  scopes: ScopeList.nullish(),
  gracePeriod: GracePeriod.nullish(),
});

const RegenerateSecretInput = z.object({ ...KeyRef, gracePeriod: GracePeriod.nullish() });

const SetValidityInput = z.object({
  ...KeyRef,
  validityPeriod: z.number().int(),
  applyToActiveTokens: z.boolean().nullish(),
});

/** A freshly issued token: the value is shown once. */
export interface IssuedToken {
  readonly value: string;
  readonly token: AccessTokenRow;
}

/**
 * Generates the keys of an application for one key type: consumer key, consumer secret (shown
 * once) and a first application token. A second call for the same key type is refused.
 */
export async function generateKeys(deps: Deps, auth: Auth, input: z.input<typeof GenerateKeysInput>) {
  const viewer = requireViewer(auth);
  const data = parseInput(GenerateKeysInput, input);
  await deps.signer.ready();
  try {
    return await deps.db.transaction(async (tx) => {
      // Locking the application serialises concurrent generateKeys calls for it.
      const app = await requireApplication(tx, viewer, data.applicationId, { forUpdate: true });
      const [existing] = await tx
        .select({ id: applicationKeys.id })
        .from(applicationKeys)
        .where(and(eq(applicationKeys.applicationId, app.id), eq(applicationKeys.keyType, data.keyType)));
      if (existing) throw new KeysAlreadyGeneratedError(data.keyType);
      const settings = await getTokenSettings(tx);
      const jwt = app.tokenFormat === "JWT";
      const validityPeriod =
        data.validityPeriod == null
          ? null
          : checkValidity(settings, data.validityPeriod, "validityPeriod", { jwt });
      const scopes = requireScopesWithin(data.scopes ?? [], await subscribedScopes(tx, app.id), "scopes");
      const [key] = await tx
        .insert(applicationKeys)
        .values({
          applicationId: app.id,
          keyType: data.keyType,
          consumerKey: randomBytes(18).toString("base64url"),
          allowedDomains: data.allowedDomains ?? [],
          validityPeriod,
          scopes,
          grantTypes: [...new Set(data.grantTypes ?? DEFAULT_GRANT_TYPES)],
        })
        .returning();
      const consumerSecret = await addConsumerSecret(tx, deps, key!.id);
      await appendTokenEvents(tx, [keyEvent(key!, "KEYS_GENERATED", null, viewer.id)]);
      const issued = await issueApplicationToken(tx, deps, {
        app,
        key: key!,
        settings,
        reason: null,
        actorId: viewer.id,
      });
      return { key: key!, consumerSecret, issued };
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new KeysAlreadyGeneratedError(data.keyType);
    throw error;
  }
}

/**
 * Revokes the key's active application tokens (reason REGENERATED) — at once, or after
 * `gracePeriod` seconds — and issues a new one, optionally changing validity, domains and scopes.
 */
export async function regenerateToken(deps: Deps, auth: Auth, input: z.input<typeof RegenerateTokenInput>) {
  const viewer = requireViewer(auth);
  const data = parseInput(RegenerateTokenInput, input);
  await deps.signer.ready();
  return thenSynced(deps.bus, () =>
    deps.db.transaction(async (tx) => {
      const { app, key: locked } = await lockKey(tx, viewer, data.applicationId, data.keyType);
      const settings = await getTokenSettings(tx);
      const changes: Partial<ApplicationKeyRow> = {};
      if (data.validityPeriod != null) {
        changes.validityPeriod = checkValidity(settings, data.validityPeriod, "validityPeriod", {
          jwt: app.tokenFormat === "JWT",
        });
      }
      if (data.allowedDomains != null) changes.allowedDomains = data.allowedDomains;
      if (data.scopes != null)
        changes.scopes = requireScopesWithin(data.scopes, await subscribedScopes(tx, app.id), "scopes");
      const key = await updateKey(tx, locked, changes);
      // Tokens kept for a grace period answer with the key's new allowed domains, and end with
      // the period, at once: no token event tells the gateways' caches of either.
      if (data.allowedDomains != null || data.gracePeriod) {
        await announceCacheNotice(tx, { applicationId: app.id });
      }

      const previous = and(eq(accessTokens.applicationKeyId, key.id), eq(accessTokens.kind, "APPLICATION"));
      let previousValidUntil: Date | null = null;
      if (data.gracePeriod) {
        // The old tokens stay valid until then; the sweeper revokes them (reason REGENERATED).
        previousValidUntil = new Date(Date.now() + data.gracePeriod * 1000);
        await tx
          .update(accessTokens)
          .set({ revokeScheduledAt: previousValidUntil })
          .where(
            and(
              previous,
              isActive(),
              or(
                isNull(accessTokens.revokeScheduledAt),
                gt(accessTokens.revokeScheduledAt, previousValidUntil),
              ),
            ),
          );
      } else {
        await revokeAccessTokens(tx, previous, "REGENERATED", viewer.id);
      }
      const issued = await issueApplicationToken(tx, deps, {
        app,
        key,
        settings,
        reason: "REGENERATED",
        actorId: viewer.id,
      });
      return { key, issued, previousValidUntil };
    }),
  );
}

/**
 * Adds a new consumer secret (shown once). The key's other secrets stop working at once, or
 * after `gracePeriod` seconds so that clients can roll over.
 */
export async function regenerateConsumerSecret(
  deps: Deps,
  auth: Auth,
  input: z.input<typeof RegenerateSecretInput>,
) {
  const viewer = requireViewer(auth);
  const data = parseInput(RegenerateSecretInput, input);
  return thenSynced(deps.bus, () =>
    deps.db.transaction(async (tx) => {
      const { key } = await lockKey(tx, viewer, data.applicationId, data.keyType);
      const current = and(eq(consumerSecrets.keyId, key.id), isNull(consumerSecrets.revokedAt));
      let previousValidUntil: Date | null = null;
      if (data.gracePeriod) {
        previousValidUntil = new Date(Date.now() + data.gracePeriod * 1000);
        await tx
          .update(consumerSecrets)
          .set({ expiresAt: previousValidUntil })
          .where(
            and(
              current,
              or(isNull(consumerSecrets.expiresAt), gt(consumerSecrets.expiresAt, previousValidUntil)),
            ),
          );
      } else {
        await tx.update(consumerSecrets).set({ revokedAt: sql`now()` }).where(current);
      }
      const consumerSecret = await addConsumerSecret(tx, deps, key.id);
      await appendTokenEvents(tx, [
        keyEvent(key, "SECRET_ROTATED", null, viewer.id, { gracePeriod: data.gracePeriod ?? 0 }),
      ]);
      return { key, consumerSecret, previousValidUntil };
    }),
  );
}

/**
 * Sets the key's validity period for the tokens it issues from now on and, with
 * `applyToActiveTokens`, moves the expiry of its active application tokens too.
 */
export async function setValidityPeriod(deps: Deps, auth: Auth, input: z.input<typeof SetValidityInput>) {
  const viewer = requireViewer(auth);
  const data = parseInput(SetValidityInput, input);
  return thenSynced(deps.bus, () =>
    deps.db.transaction(async (tx) => {
      const { app, key: locked } = await lockKey(tx, viewer, data.applicationId, data.keyType);
      const settings = await getTokenSettings(tx);
      const validityPeriod = checkValidity(settings, data.validityPeriod, "validityPeriod", {
        jwt: app.tokenFormat === "JWT",
      });
      const key = await updateKey(tx, locked, { validityPeriod });
      const events = [
        keyEvent(key, "VALIDITY_CHANGED", null, viewer.id, {
          validityPeriod,
          applyToActiveTokens: data.applyToActiveTokens ?? false,
        }),
      ];
      let updated: AccessTokenRow[] = [];
      if (data.applyToActiveTokens) {
        // JWTs carry their expiry inside the signed value: only opaque tokens can be moved.
        updated = await tx
          .update(accessTokens)
          .set({
            expiresAt:
              validityPeriod < 0
                ? null
                : sql`${accessTokens.issuedAt} + make_interval(secs => ${validityPeriod})`,
            expiringSoonNotifiedAt: null,
          })
          .where(
            and(
              eq(accessTokens.applicationKeyId, key.id),
              eq(accessTokens.kind, "APPLICATION"),
              eq(accessTokens.format, "OPAQUE"),
              isActive(),
            ),
          )
          .returning();
        events.push(...updated.map((t) => tokenEventFor(t, "VALIDITY_CHANGED", null, viewer.id)));
      }
      await appendTokenEvents(tx, events);
      return { key, updatedTokens: updated.length };
    }),
  );
}

interface ApplicationTokenInput {
  app: ApplicationRow;
  key: ApplicationKeyRow;
  settings: TokenSettings;
  scopes?: readonly string[];
  userStoreDomain: string;
  reason: TokenEventReason | null;
  actorId: string | null;
}

/** An application token for `key`, minted in memory (see prepareAccessToken). */
export function prepareApplicationToken(deps: Deps, input: ApplicationTokenInput): Promise<PreparedToken> {
  const { app, key, settings } = input;
  const jwt = app.tokenFormat === "JWT";
  const validity = effectiveValidity(settings, key.validityPeriod ?? null, settings.applicationValidity, {
    jwt,
  });
  const issuedAt = new Date();
  return prepareAccessToken(deps, {
    kind: "APPLICATION",
    format: app.tokenFormat,
    userStoreDomain: input.userStoreDomain,
    clientId: key.consumerKey,
    scopes: input.scopes ?? key.scopes,
    issuedAt,
    expiresAt: expiryFor(validity, issuedAt),
    applicationId: app.id,
    applicationKeyId: key.id,
    keyType: key.keyType,
    reason: input.reason,
    actorId: input.actorId,
  });
}

/** Issues an application token for `key` in `tx` (generateKeys, regenerateToken). */
export async function issueApplicationToken(
  tx: Tx,
  deps: Deps,
  input: Omit<ApplicationTokenInput, "userStoreDomain">,
): Promise<IssuedToken> {
  const prepared = await prepareApplicationToken(deps, {
    ...input,
    userStoreDomain: await ownerDomain(tx, input.app),
  });
  await tx.insert(accessTokens).values(prepared.token);
  await appendTokenEvents(tx, [prepared.event]);
  return { value: prepared.value, token: prepared.token };
}

/** Application tokens live in the partition of the application owner's user store domain. */
async function ownerDomain(tx: Tx, app: ApplicationRow): Promise<string> {
  const [owner] = await tx
    .select({ domain: users.userStoreDomain })
    .from(users)
    .where(eq(users.id, app.ownerId));
  return owner?.domain ?? "PRIMARY";
}

/** The client a consumer key and secret authenticate, with what issuing a token for it needs. */
export interface AuthenticatedClient {
  readonly key: ApplicationKeyRow;
  readonly app: ApplicationRow;
  readonly ownerDomain: string;
}

/** Cached clients' verified secrets: a client's next request needs no keyed hash. */
const verifiedSecrets = new VerifiedValues<ClientRecord>();

/**
 * Authenticates a client by consumer key and secret: one indexed read, a keyed-hash comparison
 * in constant time, the secret's expiry and the owner being enabled. Null for every kind of
 * failure alike.
 */
export async function authenticateClient(
  deps: Deps,
  clientId: string,
  secret: string,
): Promise<AuthenticatedClient | null> {
  const parsed = parseTokenValue(secret, TOKEN_PREFIXES.consumerSecret);
  if (!parsed) return null;
  const row = await lookupClient(deps, parsed.id);
  if (row && row.key.consumerKey !== clientId) return null;
  const keys = deps.secrets.tokenHashKeys;
  const match = row ? verifiedSecrets.verify(keys, row, secret, row.secret.secretHash) : null;
  if (!row || !match) return null;
  const now = new Date();
  if (row.secret.revokedAt || (row.secret.expiresAt && row.secret.expiresAt <= now)) return null;
  // Disabling the owner revoked its applications' tokens; its clients must not mint new ones.
  if (row.ownerDisabledAt) return null;
  // With TOKEN_HASH_REHASH, a secret hashed under a previous TOKEN_HASH_KEY is hashed again under
  // the current one at its use, so that the old key can leave the list without breaking the
  // clients in use. Off by default: during a rolling change of the list, an instance that still
  // lists the old key first would hash the secret back, and one that lists only the old key would
  // refuse it.
  const rehash = match === "previous" && deps.config.tokenHashRehash;
  if (rehash || !row.secret.lastUsedAt || now.getTime() - row.secret.lastUsedAt.getTime() > 60_000) {
    // Last use at minute precision: one write per secret per minute, not one per request.
    const changes = { lastUsedAt: now, ...(rehash ? { secretHash: hashTokenValue(keys, secret) } : {}) };
    await deps.db.update(consumerSecrets).set(changes).where(eq(consumerSecrets.id, row.secret.id));
    touchClient(deps, row, changes);
  }
  return { key: row.key, app: row.app, ownerDomain: row.ownerDomain };
}

/** The key of an application the viewer may manage, locked for the rest of the transaction. */
async function lockKey(
  tx: Tx,
  viewer: Parameters<typeof requireApplication>[1],
  applicationId: string,
  type: KeyType,
) {
  const app = await requireApplication(tx, viewer, applicationId);
  const [key] = await tx
    .select()
    .from(applicationKeys)
    .where(and(eq(applicationKeys.applicationId, app.id), eq(applicationKeys.keyType, type)))
    .for("update");
  if (!key) throw new NotFoundError("ApplicationKey", type);
  return { app, key };
}

async function updateKey(tx: Tx, key: ApplicationKeyRow, changes: Partial<ApplicationKeyRow>) {
  if (Object.keys(changes).length === 0) return key;
  const [updated] = await tx
    .update(applicationKeys)
    .set({ ...changes, updatedAt: new Date() })
    .where(eq(applicationKeys.id, key.id))
    .returning();
  return updated!;
}

/** Mints a consumer secret for the key; only its keyed hash is stored, never the value. */
async function addConsumerSecret(tx: Tx, deps: Deps, keyId: string): Promise<string> {
  const { id, value } = mintTokenValue(TOKEN_PREFIXES.consumerSecret);
  await tx
    .insert(consumerSecrets)
    .values({ id, keyId, secretHash: hashTokenValue(deps.secrets.tokenHashKeys, value) });
  return value;
}

function keyEvent(
  key: ApplicationKeyRow,
  type: TokenEventType,
  reason: TokenEventReason | null,
  actorId: string,
  details?: Record<string, unknown>,
): NewTokenEvent {
  return {
    type,
    reason,
    applicationId: key.applicationId,
    keyType: key.keyType,
    actorId,
    details: details ?? null,
  };
}

/** Batch lookup for DataLoaders. */
export const getSecretsByKeyIds = (deps: Deps, ids: readonly string[]) =>
  deps.db
    .select()
    .from(consumerSecrets)
    .where(inArray(consumerSecrets.keyId, [...ids]))
    .orderBy(consumerSecrets.createdAt);
