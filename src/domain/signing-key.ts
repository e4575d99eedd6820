import { and, eq, gt, isNull, or, sql } from "drizzle-orm";
import {
  type CryptoKey,
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeProtectedHeader,
  errors,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from "jose";
import type { Db } from "../db/client.js";
import { accessTokens, signingKeys } from "../db/schema/index.js";
import type { Deps } from "./deps.js";
import { open, seal } from "./encryption.js";
import { isUniqueViolation } from "./validation.js";
import { type Auth, requireAdmin } from "./viewer.js";

/** JWT access token signing with a rotating asymmetric key (RFC 9068). */
export interface Signer {
  /** Signs claims as an RFC 9068 access token: header `typ: at+jwt`, `alg`, `kid` of the active key. */
  signAccessToken(claims: JWTPayload): Promise<string>;
  /** Verifies signature (current or retired key), `typ`, `iss` and `exp` locally; null when invalid. */
  verifyAccessToken(jwt: string): Promise<JWTPayload | null>;
  /**
   * The public keys for /.well-known/jwks.json: the active key and the retired keys still
   * published, i.e. until every JWT each one signed has expired (and at least a day).
   */
  jwks(): Promise<{ keys: JWK[] }>;
  /** Retires the active key and activates a new one, for every instance. */
  rotate(): Promise<{ kid: string }>;
  /**
   * Loads (or creates, or rotates) the active key now, so that signing in the next moments needs
   * no database access. Call it before opening a transaction that signs: on PGlite, the single
   * connection belongs to that transaction until it ends.
   */
  ready(): Promise<void>;
  /** Stores every publication end still unwritten (on stop, before the database closes). */
  settle(): Promise<void>;
}

type SignerDeps = Pick<Deps, "config" | "database" | "db" | "secrets" | "log">;
type SigningKeyRow = typeof signingKeys.$inferSelect;

/** The active key as this instance holds it, with its private half decrypted. */
interface ActiveKey {
  readonly kid: string;
  readonly alg: string;
  readonly privateKey: CryptoKey;
  readonly createdAt: Date;
  /** When this instance last checked the database for the active key (ms). */
  readonly checkedAt: number;
  /** How long it must stay published: kept with the key, so a signature raises its own key's end. */
  readonly publication: Publication;
}

/**
 * How long the active key must stay published once retired (ms since the epoch; Infinity for
 * ever): `stored` is in `signing_keys.publish_until`, `wanted` is what the JWTs signed need.
 */
interface Publication {
  readonly kid: string;
  stored: number;
  wanted: number;
  writing: Promise<void> | undefined;
  /** The last write failed: the next signature writes again, whatever it needs. */
  failed: boolean;
}

/** The public keys tokens may be verified with, as loaded at `loadedAt` (ms). */
interface VerificationKeys {
  readonly keys: JWK[];
  readonly resolve: ReturnType<typeof createLocalJWKSet>;
  readonly loadedAt: number;
  /** Creation time of the newest key loaded: any key created later is one this cache has not seen. */
  readonly newest: Date;
}

/** How often an instance re-reads the active key, so a rotation elsewhere reaches it within this time. */
const RECHECK_MS = 60_000;
/** ready() reads the active key again when what it holds would go stale within this time (ms). */
const READY_MARGIN_MS = 10_000;
/**
 * Publication ends are stored this far beyond the `exp` that needs them, so that an instance
 * writes one about once an hour, not once per token; a key stays published up to that much longer.
 */
const PUBLICATION_HEADROOM_MS = 3_600_000;
/** Any constant: serialises key creation and rotation across instances on one PostgreSQL. */
const SIGNING_KEY_LOCK = 7_301_842_101;
/** RFC 9068 §2.1: access tokens carry `typ: at+jwt`, so they cannot pass for ID tokens. */
const ACCESS_TOKEN_TYP = "at+jwt";

/**
 * Creates the signer. Keys live in `signing_keys` (private JWKs sealed with the service key ring),
 * so every instance on one database signs with the same active key and publishes the same JWKS.
 * The first signature creates the first key; a key older than `JWT_SIGNING_KEY_MAX_AGE` (or of
 * another algorithm than `JWT_SIGNING_ALG`), or one the key ring cannot decrypt, is rotated
 * before signing. A retired key stays published until the latest `exp` it signed, recorded as
 * it signs (`publish_until`), so that changing validities later never cuts a JWT short.
 */
export function createSigner(deps: SignerDeps): Signer {
  let active: ActiveKey | undefined;
  let loadingActive: Promise<ActiveKey> | undefined;
  let verification: VerificationKeys | undefined;
  let loadingVerification: Promise<VerificationKeys> | undefined;
  /** Publication ends of keys this instance signed with, not yet stored (a write failed or is due). */
  const unsettled = new Set<Publication>();
  /** This instance refuses to sign until then (ms): see SigningKeyUnavailableError. */
  let refusal: { readonly error: SigningKeyUnavailableError; readonly until: number } | undefined;

  /** Caches the key a row describes, decrypting it only when it is not the one already held. */
  async function hold(row: SigningKeyRow, decrypted?: CryptoKey): Promise<ActiveKey> {
    const privateKey =
      active?.kid === row.kid ? active.privateKey : (decrypted ?? (await decryptPrivateKey(deps, row)));
    const stored = publicationEndOf(row);
    let publication = active?.kid === row.kid ? active.publication : undefined;
    if (publication) {
      publication.stored = Math.max(publication.stored, stored);
      publication.wanted = Math.max(publication.wanted, stored);
    } else {
      publication = { kid: row.kid, stored, wanted: stored, writing: undefined, failed: false };
    }
    refusal = undefined;
    active = {
      kid: row.kid,
      alg: row.alg,
      privateKey,
      createdAt: row.createdAt,
      checkedAt: Date.now(),
      publication,
    };
    // A key the cached JWKS does not know yet: reload it so our own tokens verify at once.
    if (!verification?.keys.some((key) => key.kid === row.kid)) verification = undefined;
    return active;
  }

  /**
   * The active key, read again when the one held is RECHECK_MS old (or due for rotation). With
   * `margin` (ready(), before a transaction that signs), what would expire within that many ms is
   * read again now, so that signing in the transaction that follows does not read: on PGlite the
   * transaction holds the only connection, and a read there would wait for ever.
   */
  async function activeKey(margin = 0): Promise<ActiveKey> {
    const now = Date.now();
    if (refusal && now < refusal.until - margin) throw refusal.error;
    if (active && now - active.checkedAt < RECHECK_MS - margin && !needsRotation(deps, active, margin))
      return active;
    loadingActive ??= (async () => {
      const [row] = await deps.db.select().from(signingKeys).where(isNull(signingKeys.retiredAt));
      const current =
        row && !needsRotation(deps, row, margin) ? row : await replaceActiveKey(deps, { margin });
      if (active?.kid === current.kid) return hold(current);
      const privateKey = await openPrivateKey(deps, current);
      if (privateKey) return hold(current, privateKey);
      if (await replacedOneWeCouldOpen(deps, current)) {
        // The instance that made this key could not open the one before it, which our ring
        // opens: our rings share no key. Replacing its key would have it replace ours in turn,
        // and so on, each key published for a day. Refuse to sign instead, loudly (once a
        // minute), until the rings are fixed or an admin rotates the key.
        deps.log.error(
          { kid: current.kid, encryptionKeyId: current.encryptionKeyId },
          "the active JWT signing key is sealed under an encryption key this instance lacks, by an instance that could not open the key before it: their TOKEN_ENCRYPTION_KEYS share no key with ours, so this instance signs no JWT until every instance has one key in common (or, if no instance holds that key any more, an admin rotates the signing key)",
        );
        refusal = { error: new SigningKeyUnavailableError(current), until: Date.now() + RECHECK_MS };
        active = undefined;
        throw refusal.error;
      }
      // Sealed under a key no longer in the ring (e.g. the generated one, lost): a new key keeps
      // JWTs coming; the old public key stays published for the JWTs it signed.
      deps.log.warn(
        { kid: current.kid, encryptionKeyId: current.encryptionKeyId },
        "the active JWT signing key cannot be decrypted with the key ring: rotating to a new one",
      );
      return hold(await replaceActiveKey(deps, { unusable: current.kid }));
    })().finally(() => {
      loadingActive = undefined;
    });
    return loadingActive;
  }

  /**
   * Records that the active key must stay published until `until` (ms): nothing to do when the
   * stored end (or the one being written) already covers it, else a later end, with headroom.
   */
  function keepPublished(pub: Publication, until: number): void {
    if (pub.wanted >= until && !pub.failed) return;
    pub.wanted = Math.max(pub.wanted, until + PUBLICATION_HEADROOM_MS);
    void storePublication(pub);
  }

  /** Writes `wanted` to the key's row, unless stored already; resolves when it is (or failed, logged). */
  function storePublication(pub: Publication): Promise<void> {
    if (pub.stored >= pub.wanted) {
      if (pub.writing) return pub.writing;
      // Stored meanwhile (another instance raised it further): nothing left to retry.
      pub.failed = false;
      unsettled.delete(pub);
      return Promise.resolve();
    }
    unsettled.add(pub);
    pub.writing ??= (async () => {
      try {
        while (pub.wanted > pub.stored) {
          const target = pub.wanted;
          await storePublicationEnd(deps.db, pub.kid, target);
          pub.stored = Math.max(pub.stored, target);
        }
        pub.failed = false;
        unsettled.delete(pub);
      } catch (error) {
        // `wanted` stays above `stored`: the next signature, ready(), rotate() or settle() writes
        // it again (even once this instance signs with another key: `unsettled` keeps it).
        pub.failed = true;
        deps.log.error(
          { err: error, kid: pub.kid },
          "could not store how long a JWT signing key stays published",
        );
      } finally {
        pub.writing = undefined;
      }
    })();
    return pub.writing;
  }

  /** Writes every unsettled publication end (each write logs its own failure). */
  async function settle(): Promise<void> {
    await Promise.all([...unsettled].map((pub) => storePublication(pub)));
  }

  async function loadVerificationKeys(): Promise<VerificationKeys> {
    const { keys, newest } = await readPublishedKeys(deps.db);
    verification = { keys, newest, resolve: createLocalJWKSet({ keys }), loadedAt: Date.now() };
    return verification;
  }

  async function verificationKeys(): Promise<VerificationKeys> {
    if (verification && Date.now() - verification.loadedAt < RECHECK_MS) return verification;
    loadingVerification ??= loadVerificationKeys().finally(() => {
      loadingVerification = undefined;
    });
    return loadingVerification;
  }

  const verifyWith = async (keys: VerificationKeys, jwt: string) =>
    (
      await jwtVerify(jwt, keys.resolve, {
        issuer: deps.config.issuer,
        typ: ACCESS_TOKEN_TYP,
        // RFC 9068 §2.2: exp is required; a JWT without it is not one of our access tokens.
        requiredClaims: ["exp"],
      })
    ).payload;

  return {
    async signAccessToken(claims) {
      const key = await activeKey();
      // Published once retired until this token expires (for ever without exp). Usually stored
      // already (headroom); otherwise written now, without waiting: the caller may hold the only
      // PGlite connection in a transaction, or most of the pool. A retired key stays published a
      // day at least, and the write only ever raises the end, so it lands in time.
      keepPublished(key.publication, typeof claims.exp === "number" ? claims.exp * 1000 : Infinity);
      // The caller owns every claim (iss, sub, aud, exp, iat, jti, client_id, scope): none is set here.
      return new SignJWT(claims)
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_TYP })
        .sign(key.privateKey);
    },

    async verifyAccessToken(jwt) {
      if (typeof jwt !== "string" || jwt === "") return null;
      const keys = await verificationKeys();
      try {
        return await verifyWith(keys, jwt);
      } catch (error) {
        // An unknown kid may be a key another instance rotated in after our load. Reload only when
        // the database holds that kid and it is newer than what we loaded, so that forged or
        // long-retired kids never turn requests into reloads.
        if (!(error instanceof errors.JWKSNoMatchingKey) || !(await isNewerKey(deps.db, jwt, keys.newest))) {
          return null;
        }
      }
      try {
        return await verifyWith(await loadVerificationKeys(), jwt);
      } catch {
        return null;
      }
    },

    async jwks() {
      // Read fresh on every request: a token signed by any instance must find its key in the JWKS
      // any instance serves. Ensuring the active key first means the JWKS is never empty; an
      // instance that cannot sign (a key it cannot open) still publishes the fleet's keys.
      await unlessRefused(activeKey());
      return { keys: (await loadVerificationKeys()).keys };
    },

    async ready() {
      // An instance that may not sign still issues opaque tokens: only signing fails (at once).
      await unlessRefused(activeKey(READY_MARGIN_MS));
      // Outside any transaction: publication ends due after earlier signatures are stored.
      await settle();
    },

    settle,

    async rotate() {
      await loadingActive?.catch(() => undefined);
      await settle();
      const previous = active?.kid;
      const key = await hold(await replaceActiveKey(deps, { force: true }));
      verification = undefined;
      deps.log.info({ kid: key.kid, previous }, "rotated the JWT signing key");
      return { kid: key.kid };
    },
  };
}

/** Admin: retires the active JWT signing key now and activates a new one (e.g. after a suspected leak). */
export async function rotateSigningKey(deps: Deps, auth: Auth): Promise<{ kid: string }> {
  requireAdmin(auth);
  return deps.signer.rotate();
}

/**
 * The active key is sealed under an encryption key this instance lacks, and replacing it would
 * start instances replacing each other's keys (see replacedOneWeCouldOpen): no JWT is signed here.
 */
export class SigningKeyUnavailableError extends Error {
  constructor(key: Pick<SigningKeyRow, "kid" | "encryptionKeyId">) {
    super(
      `JWT signing key ${key.kid} is sealed under encryption key "${key.encryptionKeyId}", which this instance's TOKEN_ENCRYPTION_KEYS lacks`,
    );
    this.name = "SigningKeyUnavailableError";
  }
}

/** Waits for `loading`, letting only a refusal to sign pass (SigningKeyUnavailableError). */
async function unlessRefused(loading: Promise<unknown>): Promise<void> {
  try {
    await loading;
  } catch (error) {
    if (!(error instanceof SigningKeyUnavailableError)) throw error;
  }
}

/**
 * Whether `current` was made by an instance that could not open the key before it, a key our
 * ring opens: that instance cannot open what we seal either, so replacing its key would only
 * have it replace ours. (Without such a record, a key we cannot open was lost from the rings.)
 */
async function replacedOneWeCouldOpen(deps: SignerDeps, current: SigningKeyRow): Promise<boolean> {
  // Retired in the transaction that created `current`: the same now().
  const [previous] = await deps.db
    .select({ encryptionKeyId: signingKeys.encryptionKeyId, retiredUnusable: signingKeys.retiredUnusable })
    .from(signingKeys)
    // Compared in SQL: the timestamps have microseconds, a Date only milliseconds.
    .where(
      eq(
        signingKeys.retiredAt,
        sql`(select ${signingKeys.createdAt} from ${signingKeys} where ${signingKeys.kid} = ${current.kid})`,
      ),
    );
  return previous?.retiredUnusable === true && deps.secrets.encryption.keys.has(previous.encryptionKeyId);
}

/** Whether the key is too old (or will be within `margin` ms) or of another algorithm than configured. */
function needsRotation(deps: SignerDeps, key: Pick<SigningKeyRow, "alg" | "createdAt">, margin = 0): boolean {
  const maxAge = deps.config.jwt.signingKeyMaxAge;
  // A tenth of the lifetime at most: a short one must not make every early look a rotation.
  const age = (Date.now() + Math.min(margin, maxAge * 100) - key.createdAt.getTime()) / 1000;
  return age >= maxAge || key.alg !== deps.config.jwt.alg;
}

/**
 * Retires the active key and inserts a new one in one transaction. Unless `force`, a key that
 * another instance activated meanwhile (still fresh, and not the `unusable` one this instance
 * cannot decrypt) is kept instead. Returns the active row.
 */
async function replaceActiveKey(
  deps: SignerDeps,
  { force = false, unusable, margin = 0 }: { force?: boolean; unusable?: string; margin?: number } = {},
): Promise<SigningKeyRow> {
  try {
    return await deps.db.transaction(async (tx) => {
      // PGlite has a single connection, which already serialises transactions.
      if (deps.database.driver === "postgres") {
        await tx.execute(sql`select pg_advisory_xact_lock(${SIGNING_KEY_LOCK})`);
      }
      const [current] = await tx.select().from(signingKeys).where(isNull(signingKeys.retiredAt));
      if (current && !force && current.kid !== unusable && !needsRotation(deps, current, margin)) {
        return current;
      }
      if (current) {
        // The end decided at retirement: what it signed (kept up to date as it signs, later
        // signatures by instances yet to notice included), and at least a day, for verifiers'
        // caches. Only ever raised. The latest expiry of the JWTs issued since it became active
        // (all signed with it) is a floor too: an end written without waiting while signing is
        // lost if its instance stops before it lands. Only expiries past the day count, so the
        // read walks the few long-lived tokens on the expiry index, not the table; issued_at is
        // the issuing instance's clock, hence five minutes of margin.
        const signedSince = sql`(select max(${accessTokens.expiresAt}) from ${accessTokens}
          where ${accessTokens.expiresAt} > now() + interval '1 day' and ${accessTokens.format} = 'JWT'
            and ${accessTokens.issuedAt} >= ${sql.param(current.createdAt, accessTokens.issuedAt)}::timestamptz - interval '5 minutes')`;
        await tx
          .update(signingKeys)
          .set({
            retiredAt: sql`now()`,
            retiredUnusable: current.kid === unusable,
            publishUntil: sql`greatest(${signingKeys.publishUntil}, now() + interval '1 day', ${signedSince})`,
          })
          .where(eq(signingKeys.kid, current.kid));
      }
      const [created] = await tx
        .insert(signingKeys)
        .values(await generateSigningKey(deps))
        .returning();
      return created!;
    });
  } catch (error) {
    // Another instance (without the lock, e.g. an older version) won the one-active-key index.
    if (!isUniqueViolation(error)) throw error;
    const [winner] = await deps.db.select().from(signingKeys).where(isNull(signingKeys.retiredAt));
    if (!winner) throw error;
    return winner;
  }
}

/** A new key pair: kid = RFC 7638 thumbprint; private JWK sealed (AES-256-GCM) and bound to its kid. */
async function generateSigningKey(deps: SignerDeps): Promise<typeof signingKeys.$inferInsert> {
  const alg = deps.config.jwt.alg;
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const sealed = seal(deps.secrets.encryption, JSON.stringify(await exportJWK(privateKey)), sealContext(kid));
  return {
    kid,
    alg,
    // RFC 7517 §4.2–4.5: `use` and `alg` let verifiers pick the key without guessing.
    publicJwk: { ...publicJwk, kid, alg, use: "sig" },
    privateJwkCiphertext: sealed.ciphertext,
    encryptionKeyId: sealed.keyId,
  };
}

/** The row's private key; null when the key ring cannot decrypt it. */
async function openPrivateKey(deps: SignerDeps, row: SigningKeyRow): Promise<CryptoKey | null> {
  const json = open(
    deps.secrets.encryption,
    { keyId: row.encryptionKeyId, ciphertext: row.privateJwkCiphertext },
    sealContext(row.kid),
  );
  return json === null ? null : ((await importJWK(JSON.parse(json) as JWK, row.alg)) as CryptoKey);
}

async function decryptPrivateKey(deps: SignerDeps, row: SigningKeyRow): Promise<CryptoKey> {
  const privateKey = await openPrivateKey(deps, row);
  if (privateKey === null) {
    throw new Error(
      `JWT signing key ${row.kid} cannot be decrypted: encryption key "${row.encryptionKeyId}" is not in ` +
        "the key ring (TOKEN_ENCRYPTION_KEYS); restore it, or rotate the signing key (rotateSigningKey)",
    );
  }
  return privateKey;
}

const sealContext = (kid: string) => `signing-key:${kid}`;

/** The active key and the retired keys still published, active first, newest first. */
async function readPublishedKeys(db: Db): Promise<{ keys: JWK[]; newest: Date }> {
  const rows = await db
    .select({ publicJwk: signingKeys.publicJwk, createdAt: signingKeys.createdAt })
    .from(signingKeys)
    // At least a day after retirement whatever publish_until says: an instance of a version before
    // publish_until retires a key without raising it (greatest() ignores a null).
    .where(
      or(
        isNull(signingKeys.retiredAt),
        sql`greatest(${signingKeys.publishUntil}, ${signingKeys.retiredAt} + interval '1 day') > now()`,
      ),
    )
    .orderBy(sql`${signingKeys.retiredAt} desc nulls first`);
  const newest = Math.max(0, ...rows.map((row) => row.createdAt.getTime()));
  return { keys: rows.map((row) => row.publicJwk as JWK), newest: new Date(newest) };
}

/** A row's stored publication end in ms: -Infinity when unset, Infinity for `infinity`. */
function publicationEndOf(row: SigningKeyRow): number {
  if (!row.publishUntil) return Number.NEGATIVE_INFINITY;
  const ms = row.publishUntil.getTime();
  // PostgreSQL's `infinity` reads as an invalid Date.
  return Number.isNaN(ms) ? Number.POSITIVE_INFINITY : ms;
}

/** Raises the key's stored publication end to `until` (ms; Infinity for ever); never lowers it. */
async function storePublicationEnd(db: Db, kid: string, until: number): Promise<void> {
  const end = Number.isFinite(until)
    ? sql`${new Date(until).toISOString()}::timestamptz`
    : sql`'infinity'::timestamptz`;
  await db
    .update(signingKeys)
    .set({ publishUntil: sql`greatest(${signingKeys.publishUntil}, ${end})` })
    .where(eq(signingKeys.kid, kid));
}

const KID = /^[A-Za-z0-9_-]{1,128}$/;

/** True when the token's `kid` names a key created after `since` (one loaded caches lack). */
async function isNewerKey(db: Db, jwt: string, since: Date): Promise<boolean> {
  let kid: unknown;
  try {
    kid = decodeProtectedHeader(jwt).kid;
  } catch {
    return false;
  }
  // Ours are RFC 7638 thumbprints (base64url): anything else names no key of ours, and must not
  // reach the database (a NUL byte there is an error, not a miss).
  if (typeof kid !== "string" || !KID.test(kid)) return false;
  const [row] = await db
    .select({ kid: signingKeys.kid })
    .from(signingKeys)
    .where(and(eq(signingKeys.kid, kid), gt(signingKeys.createdAt, since)));
  return row !== undefined;
}
