import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/** AES-256 keys by id; `current` encrypts, every key in `keys` still decrypts (rotation). */
export interface KeyRing {
  readonly current: { readonly id: string; readonly key: Buffer };
  readonly keys: ReadonlyMap<string, Buffer>;
}

export interface Sealed {
  readonly keyId: string;
  /** base64url(iv 12 bytes || ciphertext || tag 16 bytes) */
  readonly ciphertext: string;
}

/** Encrypts with AES-256-GCM under the ring's current key; `context` is bound as associated data. */
export function seal(ring: KeyRing, plaintext: string, context: string): Sealed {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", ring.current.key, iv);
  cipher.setAAD(Buffer.from(context));
  const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return {
    keyId: ring.current.id,
    ciphertext: Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64url"),
  };
}

/** Decrypts what `seal` produced under any key still in the ring; null when the key is gone or the data was altered. */
export function open(ring: KeyRing, sealed: Sealed, context: string): string | null {
  const key = ring.keys.get(sealed.keyId);
  if (!key) return null;
  const raw = Buffer.from(sealed.ciphertext, "base64url");
  if (raw.length < 28) return null;
  try {
    const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, 12));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]).toString(
      "utf8",
    );
  } catch {
    return null;
  }
}
