import {
  createHmac,
  createSecretKey,
  type KeyObject,
  randomFillSync,
  randomUUID,
  timingSafeEqual,
} from "node:crypto";
import { crc32 } from "node:zlib";

/**
 * Opaque credential values: `<prefix>_<id>_<secret><checksum>`.
 * - the prefix lets secret scanners recognise leaked values;
 * - `id` (32 hex) is the row's UUID, so a value is found by primary key, never by hash lookup;
 * - `secret` is 256 random bits (64 hex); only a keyed hash of the whole value is stored;
 * - `checksum` (CRC-32, 8 hex) rejects mistyped or truncated values without a database read.
 */
export const TOKEN_PREFIXES = {
  accessToken: "tmat",
  refreshToken: "tmrt",
  consumerSecret: "tmcs",
} as const;
export type TokenPrefix = (typeof TOKEN_PREFIXES)[keyof typeof TOKEN_PREFIXES];

export interface MintedValue {
  readonly id: string;
  readonly value: string;
}

const SHAPE = /^(tm[a-z]{2})_([0-9a-f]{32})_([0-9a-f]{64})([0-9a-f]{8})$/;

const checksum = (body: string) => crc32(body).toString(16).padStart(8, "0");
const uuidToHex = (id: string) => id.replaceAll("-", "");
const hexToUuid = (h: string) =>
  `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;

/**
 * Secret parts come from the CSPRNG in 4 KiB draws, sliced 32 bytes at a time (as Node does for
 * randomUUID): one system call per 128 values instead of one each. A slice is zeroed once used.
 */
const entropy = Buffer.alloc(4096);
let entropyUsed = entropy.length;

function randomHex(bytes: number): string {
  if (entropyUsed + bytes > entropy.length) {
    randomFillSync(entropy);
    entropyUsed = 0;
  }
  const hex = entropy.toString("hex", entropyUsed, entropyUsed + bytes);
  entropy.fill(0, entropyUsed, entropyUsed + bytes);
  entropyUsed += bytes;
  return hex;
}

/** Mints a new credential value with a fresh id (or the given one). */
export function mintTokenValue(prefix: TokenPrefix, id: string = randomUUID()): MintedValue {
  const body = `${prefix}_${uuidToHex(id)}_${randomHex(32)}`;
  return { id, value: body + checksum(body) };
}

/** Parses a value of the expected kind; null when malformed, of another kind, or the checksum fails. */
export function parseTokenValue(value: string, prefix: TokenPrefix): { id: string } | null {
  if (value.length !== 110) return null;
  const m = SHAPE.exec(value);
  if (!m || m[1] !== prefix) return null;
  const body = value.slice(0, -8);
  if (checksum(body) !== m[4]) return null;
  return { id: hexToUuid(m[2] as string) };
}

/**
 * The id a well-shaped value of the expected kind names, its checksum not checked: for a lookup
 * that goes on to compare the whole value with one already verified. Anything else must use
 * `parseTokenValue`.
 */
export function idOfShapedValue(value: string, prefix: TokenPrefix): string | null {
  if (value.length !== 110) return null;
  const m = SHAPE.exec(value);
  return m && m[1] === prefix ? hexToUuid(m[2] as string) : null;
}

/** The key imported once (an HMAC from raw bytes imports them on every call). */
const keyObjects = new WeakMap<Buffer, KeyObject>();
function keyObjectOf(key: Buffer): KeyObject {
  let keyObject = keyObjects.get(key);
  if (!keyObject) {
    keyObject = createSecretKey(key);
    keyObjects.set(key, keyObject);
  }
  return keyObject;
}

/**
 * The keys of credential hashes (TOKEN_HASH_KEY): `current` hashes every new value; a value
 * hashed under one of the `previous` keys still verifies, so the key can be rotated (the new one
 * put first) without breaking the credentials already issued.
 */
export interface HashKeys {
  readonly current: Buffer;
  readonly previous: readonly Buffer[];
}

/** Keyed hash (HMAC-SHA-256, under the current key) of a credential value: what the database stores. */
export function hashTokenValue(keys: HashKeys, value: string): string {
  return keyedDigest(keys.current, value).toString("base64url");
}

const keyedDigest = (key: Buffer, value: string) =>
  createHmac("sha256", keyObjectOf(key)).update(value).digest();

/**
 * Equal strings, compared in time that depends only on their length: for a value already
 * verified against its hash and kept in memory, a cheaper check than hashing it again.
 */
export function sameValue(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** What a presented value is to a stored hash: made under the current key, a previous one, or neither. */
export type HashMatch = "current" | "previous" | null;

/**
 * Compares a presented value with a stored keyed hash in constant time, under the current key
 * and then, only if that fails, under each previous one.
 */
export function matchTokenValue(keys: HashKeys, value: string, storedHash: string): HashMatch {
  const expected = Buffer.from(storedHash, "base64url");
  if (digestMatches(keys.current, value, expected)) return "current";
  for (const key of keys.previous) if (digestMatches(key, value, expected)) return "previous";
  return null;
}

function digestMatches(key: Buffer, value: string, expected: Buffer): boolean {
  const actual = keyedDigest(key, value);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** Whether a presented value matches a stored keyed hash, under any of the keys. */
export const verifyTokenValue = (keys: HashKeys, value: string, storedHash: string): boolean =>
  matchTokenValue(keys, value, storedHash) !== null;

/**
 * The value that last verified against each cached record's stored hash, and under which key: the
 * record's next request with the same value is recognised by a constant-time comparison instead
 * of another keyed hash. A value lives exactly as long as its record, which the caches replace on
 * revocation, rotation or expiry (and on a hash made again under the current key).
 */
export class VerifiedValues<K extends object> {
  private readonly values = new WeakMap<
    K,
    { readonly value: string; readonly match: "current" | "previous" }
  >();

  /** How `value` matched when it last verified for `record`; null when it is not that value (no hashing). */
  known(record: K, value: string): HashMatch {
    const known = this.values.get(record);
    return known !== undefined && sameValue(known.value, value) ? known.match : null;
  }

  /** How `value` matches `storedHash` (recognised, or verified and then remembered); null when it does not. */
  verify(keys: HashKeys, record: K, value: string, storedHash: string): HashMatch {
    const known = this.known(record, value);
    if (known) return known;
    const match = matchTokenValue(keys, value, storedHash);
    if (match) this.values.set(record, { value, match });
    return match;
  }
}
