import type { Deps } from "./deps.js";
import { open, seal } from "./encryption.js";
import { hashTokenValue } from "./token-value.js";

/** How a credential value is stored: always a keyed hash; with TOKEN_PERSISTENCE=encrypt also a ciphertext. */
export interface StoredValue {
  readonly tokenHash: string;
  readonly tokenCiphertext: string | null;
  readonly encryptionKeyId: string | null;
}

/** The stored form of a token value; `context` (kind and row id) is bound into the ciphertext. */
export function storedForm(deps: Deps, value: string, context: string): StoredValue {
  const tokenHash = hashTokenValue(deps.secrets.tokenHashKeys, value);
  if (deps.config.tokenPersistence !== "encrypt")
    return { tokenHash, tokenCiphertext: null, encryptionKeyId: null };
  const sealed = seal(deps.secrets.encryption, value, context);
  return { tokenHash, tokenCiphertext: sealed.ciphertext, encryptionKeyId: sealed.keyId };
}

/** The value again (encrypt mode only); null when it was stored as a hash or its key left the ring. */
export function revealStored(
  deps: Deps,
  row: { tokenCiphertext: string | null; encryptionKeyId: string | null },
  context: string,
): string | null {
  if (!row.tokenCiphertext || !row.encryptionKeyId) return null;
  return open(
    deps.secrets.encryption,
    { keyId: row.encryptionKeyId, ciphertext: row.tokenCiphertext },
    context,
  );
}
