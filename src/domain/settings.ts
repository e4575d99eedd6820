import { eq } from "drizzle-orm";
import { z } from "zod";
import type { Tx } from "../db/client.js";
import { settings } from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { ValidationError } from "./errors.js";
import { parseInput } from "./validation.js";
import { type Auth, requireAdmin } from "./viewer.js";

/** Token validity defaults and guardrails, changed by admins at run time. */
export interface TokenSettings {
  /** Seconds; negative = never expires. */
  readonly applicationValidity: number;
  readonly userValidity: number;
  readonly refreshValidity: number;
  /** Caps every validity period (seconds); null = no cap. */
  readonly maxValidity: number | null;
  readonly allowNeverExpiring: boolean;
}

const TOKEN_SETTINGS = "token";

/** Seeds run-time settings from the environment on first start; later starts keep what admins set. */
export async function seedSettings(deps: Deps): Promise<void> {
  const initial: TokenSettings = {
    applicationValidity: deps.config.validity.application,
    userValidity: deps.config.validity.user,
    refreshValidity: deps.config.validity.refresh,
    maxValidity: null,
    allowNeverExpiring: true,
  };
  await deps.db.insert(settings).values({ key: TOKEN_SETTINGS, value: initial }).onConflictDoNothing();
}

export async function getTokenSettings(tx: Tx): Promise<TokenSettings> {
  const [row] = await tx.select().from(settings).where(eq(settings.key, TOKEN_SETTINGS));
  if (!row) throw new Error("token settings are missing (seedSettings did not run)");
  return row.value as TokenSettings;
}

const SETTINGS_TTL_MS = 1000;
const cached = new WeakMap<Deps["db"], { value: TokenSettings; at: number }>();

/**
 * The token settings for hot paths (the token endpoint): read at most once a second per
 * instance, and at once on the instance that changed them.
 */
export async function currentTokenSettings(deps: Deps): Promise<TokenSettings> {
  const hit = cached.get(deps.db);
  if (hit && Date.now() - hit.at < SETTINGS_TTL_MS) return hit.value;
  const value = await getTokenSettings(deps.db);
  cached.set(deps.db, { value, at: Date.now() });
  return value;
}

/** The expiry instant of a token issued at `now` with `validity` seconds; null = never expires. */
export function expiryFor(validity: number, now: Date): Date | null {
  return validity < 0 ? null : new Date(now.getTime() + validity * 1000);
}

const MAX_SECONDS = 10 * 365 * 86400;
const JWT_FALLBACK_VALIDITY = 86400;

/**
 * Checks a validity period an owner asks for: 0 is meaningless, over the admin's maximum is
 * refused, negative (never expires) only where settings allow it and never for JWTs (RFC 9068
 * §2.2 requires `exp`).
 */
export function checkValidity(
  settings: TokenSettings,
  validity: number,
  field: string,
  options: { jwt?: boolean } = {},
): number {
  if (!Number.isInteger(validity) || validity === 0) {
    throw new ValidationError(
      field,
      `${field} must be a non-zero number of seconds (negative = never expires)`,
    );
  }
  if (validity < 0) {
    if (options.jwt)
      throw new ValidationError(field, `${field}: JWT access tokens must expire (RFC 9068 requires exp)`);
    if (!settings.allowNeverExpiring)
      throw new ValidationError(field, `${field}: never-expiring tokens are not allowed`);
    return -1;
  }
  const max = settings.maxValidity ?? MAX_SECONDS;
  if (validity > max) throw new ValidationError(field, `${field} must be at most ${max} seconds`);
  return validity;
}

/**
 * The validity a token actually gets at issue time: the key's own (or else the default for its
 * kind, `defaultValidity`) capped by the current settings, so that tightening the settings
 * applies to every later token.
 */
export function effectiveValidity(
  settings: TokenSettings,
  own: number | null,
  defaultValidity: number,
  options: { jwt?: boolean } = {},
): number {
  const validity = own ?? defaultValidity;
  const max = settings.maxValidity ?? MAX_SECONDS;
  if (validity < 0 && settings.allowNeverExpiring && !options.jwt) return -1;
  // A JWT must expire (RFC 9068): a never-expiring default becomes one day, within the time
  // retired signing keys stay published.
  if (validity < 0 && options.jwt) return Math.min(JWT_FALLBACK_VALIDITY, max);
  // A key set to never expire before an admin disallowed it: the longest an admin allows (the
  // cap), or with no cap the default, not ten years (which would be never-expiring in all but name).
  if (validity < 0) return settings.maxValidity ?? (defaultValidity > 0 ? defaultValidity : MAX_SECONDS);
  return Math.min(validity, max);
}

const TokenSettingsInput = z
  .object({
    applicationValidity: z.number().int().optional(),
    userValidity: z.number().int().optional(),
    refreshValidity: z.number().int().optional(),
    maxValidity: z
      .number()
      .int()
      .positive("must be a positive number of seconds")
      .max(MAX_SECONDS)
      .nullable()
      .optional(),
    allowNeverExpiring: z.boolean().optional(),
  })
  .strict();

/** Admin: changes the defaults and guardrails; later tokens follow them. */
export async function updateTokenSettings(
  deps: Deps,
  auth: Auth,
  input: z.input<typeof TokenSettingsInput>,
): Promise<TokenSettings> {
  requireAdmin(auth);
  const changes = parseInput(TokenSettingsInput, input);
  return deps.db.transaction(async (tx) => {
    const [row] = await tx.select().from(settings).where(eq(settings.key, TOKEN_SETTINGS)).for("update");
    const current = row!.value as TokenSettings;
    const next: TokenSettings = {
      applicationValidity: changes.applicationValidity ?? current.applicationValidity,
      userValidity: changes.userValidity ?? current.userValidity,
      refreshValidity: changes.refreshValidity ?? current.refreshValidity,
      maxValidity: changes.maxValidity === undefined ? current.maxValidity : changes.maxValidity,
      allowNeverExpiring: changes.allowNeverExpiring ?? current.allowNeverExpiring,
    };
    for (const field of ["applicationValidity", "userValidity", "refreshValidity"] as const) {
      checkValidity(next, next[field], field);
    }
    await tx
      .update(settings)
      .set({ value: next, updatedAt: new Date() })
      .where(eq(settings.key, TOKEN_SETTINGS));
    cached.delete(deps.db);
    return next;
  });
}

/** Admin: the current token settings. */
export async function readTokenSettings(deps: Deps, auth: Auth): Promise<TokenSettings> {
  requireAdmin(auth);
  return getTokenSettings(deps.db);
}
