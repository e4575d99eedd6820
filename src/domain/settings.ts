import { eq } from "drizzle-orm";
import type { Tx } from "../db/client.js";
import { settings } from "../db/schema/index.js";
import type { Deps } from "./deps.js";

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

/** The expiry instant of a token issued at `now` with `validity` seconds; null = never expires. */
export function expiryFor(validity: number, now: Date): Date | null {
  return validity < 0 ? null : new Date(now.getTime() + validity * 1000);
}
