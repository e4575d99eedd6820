import { asc, sql } from "drizzle-orm";
import { z } from "zod";
import { userStoreDomains } from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { AlreadyExistsError, BusyError, ValidationError } from "./errors.js";
import { isUniqueViolation, parseInput, sqlState } from "./validation.js";
import { type Auth, requireAdmin } from "./viewer.js";

const DomainInput = z.object({
  name: z
    .string()
    .regex(
      /^[A-Z][A-Z0-9_]{0,30}$/,
      "must start with a letter and use upper-case letters, digits and _ (max 31)",
    ),
});

/**
 * Adding a partition locks access_tokens exclusively. Queued behind a long transaction on the
 * table (a report, a large revocation), that lock request would hold up every token read and
 * write behind it for as long as the transaction lasts; instead the DDL gives way after `waitMs`
 * (traffic stalls at most that long), pauses `pauseMs`, tries again, and after `attempts` answers
 * BusyError with nothing changed.
 */
const PARTITION_LOCK = { waitMs: 500, attempts: 4, pauseMs: 250 } as const;
/** lock_not_available: lock_timeout ran out. */
const LOCK_NOT_AVAILABLE = "55P03";

/**
 * Admin: adds a user store domain and its own access token partition (the seeds' user token
 * partitioning), in one transaction. The name is validated above, so it is safe in DDL.
 */
export async function createUserStoreDomain(deps: Deps, auth: Auth, input: z.input<typeof DomainInput>) {
  requireAdmin(auth);
  const { name } = parseInput(DomainInput, input);
  try {
    return await givingWayToLongTransactions(deps, name, () =>
      deps.db.transaction(async (tx) => {
        await tx.execute(sql.raw(`set local lock_timeout = ${PARTITION_LOCK.waitMs}`));
        const [domain] = await tx.insert(userStoreDomains).values({ name }).returning();
        await tx.execute(
          sql.raw(`create table "${partitionOf(name)}" partition of access_tokens for values in ('${name}')`),
        );
        return domain!;
      }),
    );
  } catch (error) {
    if (isUniqueViolation(error)) throw new AlreadyExistsError("UserStoreDomain", "name");
    // The domain is new, but its partition's name is taken by another relation (DEFAULT names
    // the default partition, PRIMARY_PKEY an index…).
    if (sqlState(error) === "42P07") {
      throw new ValidationError(
        "name",
        `name is reserved: the partition it needs (${partitionOf(name)}) would clash with a table or index of the service`,
      );
    }
    throw error;
  }
}

/** Runs `attempt` again while its lock wait runs out (PARTITION_LOCK), then answers BusyError. */
async function givingWayToLongTransactions<T>(
  deps: Deps,
  domain: string,
  attempt: () => Promise<T>,
): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (sqlState(error) !== LOCK_NOT_AVAILABLE) throw error;
      if (tries === PARTITION_LOCK.attempts) break;
    }
    await new Promise((resolve) => setTimeout(resolve, PARTITION_LOCK.pauseMs));
  }
  deps.log.warn(
    { domain, attempts: PARTITION_LOCK.attempts },
    "user store domain not added: access_tokens stayed locked",
  );
  throw new BusyError("the token table is busy with other work: no domain was added, retry shortly", 5);
}

/** Admin: the user store domains, with the partition each one's tokens live in. */
export async function listUserStoreDomains(deps: Deps, auth: Auth) {
  requireAdmin(auth);
  return deps.db.select().from(userStoreDomains).orderBy(asc(userStoreDomains.name));
}

/** The partition of access_tokens a domain's tokens are stored in. */
export const partitionOf = (name: string) => `access_tokens_${name.toLowerCase()}`;
