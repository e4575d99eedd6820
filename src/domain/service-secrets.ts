import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Database } from "../db/client.js";
import { serviceSecrets } from "../db/schema/index.js";
import type { KeyRing } from "./encryption.js";
import type { HashKeys } from "./token-value.js";

export interface ServiceSecrets {
  /** HMAC keys for credential values at rest: the current one hashes, every one verifies. */
  readonly tokenHashKeys: HashKeys;
  /** AES-256-GCM keys for tokens at rest (TOKEN_PERSISTENCE=encrypt) and for JWT signing keys. */
  readonly encryption: KeyRing;
}

type SecretName = "token_hash_key" | "token_encryption_key";
const GENERATED_KEY_ID = "generated";
const GENERATED_BYTES = 32;

/**
 * Loads the service's secrets: from the environment when given; otherwise generated on first
 * start and kept in `DATA_DIR/secrets.json` (PGlite) or in the database (PostgreSQL, so every
 * instance shares them).
 */
export async function loadServiceSecrets(
  config: Config,
  database: Database,
  log: Logger,
): Promise<ServiceSecrets> {
  const store = database.driver === "postgres" ? databaseStore(database) : fileStore(config.dataDir);
  const generated: SecretName[] = [];
  const generatedKey = async (name: SecretName) => {
    const { value, created } = await store.get(name, () => randomBytes(GENERATED_BYTES).toString("hex"));
    if (created) generated.push(name);
    return Buffer.from(value, "hex");
  };
  // Moving to keys from the environment (as the startup warning advises): what a generated key
  // hashed or sealed before (credentials, token values, JWT signing keys) must stay usable, so a
  // stored one still verifies and decrypts, but never hashes or seals again.
  // Only a help for old data: a secrets.json that cannot be read (broken, unreadable) does not stop
  // a service whose keys all come from the environment; its error is not logged (a JSON parse
  // error may quote the file). A database error does stop the start, as before: running on
  // without the generated key would rotate the fleet's signing key away.
  const generatedBefore = (name: SecretName) =>
    store.read(name).catch((error: unknown) => {
      if (database.driver === "postgres") throw error;
      log.warn(
        { secret: name },
        "a generated key kept from before could not be read: what it protected stays so",
      );
      return undefined;
    });

  const configured = config.tokenEncryptionKeys;
  const ring = configured
    ? configured.map(({ id, key }) => ({ id, key: Buffer.from(key, "hex") }))
    : [{ id: GENERATED_KEY_ID, key: await generatedKey("token_encryption_key") }];
  const keys = new Map(ring.map((k) => [k.id, k.key]));
  // Under its own id, unless a configured key took that id.
  const previous =
    configured && !keys.has(GENERATED_KEY_ID) ? await generatedBefore("token_encryption_key") : undefined;
  if (previous) keys.set(GENERATED_KEY_ID, Buffer.from(previous, "hex"));

  const secrets: ServiceSecrets = {
    tokenHashKeys: config.tokenHashKeys
      ? configuredHashKeys(config.tokenHashKeys, await generatedBefore("token_hash_key"), log)
      : Object.freeze({ current: await generatedKey("token_hash_key"), previous: Object.freeze([]) }),
    encryption: Object.freeze({ current: ring[0]!, keys }),
  };
  if (generated.length > 0 && database.driver === "postgres") {
    log.warn(
      { secrets: generated },
      "generated service secrets stored in the database; supply them via the environment in production",
    );
  } else if (generated.length > 0) {
    log.info({ secrets: generated }, "generated service secrets in DATA_DIR");
  }
  return Object.freeze(secrets);
}

/**
 * TOKEN_HASH_KEY's keys, the first current; a key generated before it was set comes last (with a
 * warning at every start, until it is deleted), so that the credentials it hashed keep working.
 */
function configuredHashKeys(
  configured: readonly string[],
  generatedBefore: string | undefined,
  log: Logger,
): HashKeys {
  const [current, ...previous] = configured.map((hex) => Buffer.from(hex, "hex")) as [Buffer, ...Buffer[]];
  const generated = generatedBefore === undefined ? undefined : Buffer.from(generatedBefore, "hex");
  if (generated && !previous.concat(current).some((key) => key.equals(generated))) {
    previous.push(generated);
    log.warn(
      { secret: "token_hash_key" },
      "the token hash key generated before TOKEN_HASH_KEY was set still verifies the credentials it hashed: delete it (DATA_DIR/secrets.json, or the service_secrets row on PostgreSQL) once they have expired or been regenerated",
    );
  }
  return Object.freeze({ current, previous: Object.freeze(previous) });
}

interface Store {
  /** The stored secret, generated and stored first when there is none. */
  get(name: SecretName, generate: () => string): Promise<{ value: string; created: boolean }>;
  /** The stored secret, if any; never creates one. */
  read(name: SecretName): Promise<string | undefined>;
}

function databaseStore(database: Database): Store {
  const read = async (name: SecretName) =>
    (await database.raw<{ value: string }>("select value from service_secrets where name = $1", [name]))[0]
      ?.value;
  return {
    read,
    get: async (name, generate) => {
      // Race-safe across instances: the first insert wins, everyone reads the winner.
      const inserted = await database.db
        .insert(serviceSecrets)
        .values({ name, value: generate() })
        .onConflictDoNothing()
        .returning({ value: serviceSecrets.value });
      if (inserted[0]) return { value: inserted[0].value, created: true };
      return { value: (await read(name))!, created: false };
    },
  };
}

function fileStore(dataDir: string): Store {
  if (dataDir.startsWith("memory://")) {
    return {
      get: async (_name, generate) => ({ value: generate(), created: true }),
      read: async () => undefined,
    };
  }
  const file = join(dataDir, "secrets.json");
  const load = async (): Promise<Record<string, string>> => {
    try {
      return JSON.parse(await readFile(file, "utf8")) as Record<string, string>;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      return {};
    }
  };
  return {
    read: async (name) => (await load())[name],
    get: async (name, generate) => {
      const stored = await load();
      const existing = stored[name];
      if (existing) return { value: existing, created: false };
      const value = generate();
      await mkdir(dataDir, { recursive: true });
      await writeFile(file, JSON.stringify({ ...stored, [name]: value }, null, 2), { mode: 0o600 });
      return { value, created: true };
    },
  };
}
