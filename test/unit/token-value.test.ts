import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  type HashKeys,
  hashTokenValue,
  idOfShapedValue,
  matchTokenValue,
  mintTokenValue,
  parseTokenValue,
  sameValue,
  TOKEN_PREFIXES,
  VerifiedValues,
  verifyTokenValue,
} from "../../src/domain/token-value.js";

/** One key and no previous ones. */
const only = (current: Buffer): HashKeys => ({ current, previous: [] });
const key = only(randomBytes(32));

describe("token values", () => {
  it("mints prefixed values that carry their id and 256 random bits", () => {
    const a = mintTokenValue(TOKEN_PREFIXES.accessToken);
    const b = mintTokenValue(TOKEN_PREFIXES.accessToken);
    expect(a.value).toMatch(/^tmat_[0-9a-f]{32}_[0-9a-f]{72}$/);
    expect(a.value).not.toBe(b.value);
    expect(parseTokenValue(a.value, "tmat")).toEqual({ id: a.id });
  });

  it("never repeats a secret part across refills of its random pool", () => {
    // 1,000 values span several 4 KiB draws: every secret distinct, none all zeros (a used slice).
    const secrets = Array.from({ length: 1000 }, () =>
      mintTokenValue(TOKEN_PREFIXES.accessToken).value.slice(38, 102),
    );
    expect(new Set(secrets).size).toBe(1000);
    expect(secrets.filter((s) => /^0+$/.test(s))).toEqual([]);
    expect(secrets.every((s) => /^[0-9a-f]{64}$/.test(s))).toBe(true);
  });

  it("hashes with the key's bytes, whichever Buffer holds them", () => {
    const value = mintTokenValue(TOKEN_PREFIXES.accessToken).value;
    expect(hashTokenValue(only(Buffer.from(key.current)), value)).toBe(hashTokenValue(key, value));
    expect(hashTokenValue(only(randomBytes(32)), value)).not.toBe(hashTokenValue(key, value));
  });

  it("rejects a value of another kind", () => {
    const refresh = mintTokenValue(TOKEN_PREFIXES.refreshToken);
    expect(parseTokenValue(refresh.value, "tmat")).toBeNull();
    expect(parseTokenValue(refresh.value, "tmrt")).toEqual({ id: refresh.id });
  });

  it("rejects any single mistyped character through the checksum", () => {
    const { value } = mintTokenValue(TOKEN_PREFIXES.accessToken);
    for (const position of [10, 40, 80, value.length - 1]) {
      const c = value[position] === "a" ? "b" : "a";
      expect(parseTokenValue(value.slice(0, position) + c + value.slice(position + 1), "tmat")).toBeNull();
    }
    expect(parseTokenValue(value.slice(0, -1), "tmat")).toBeNull();
    expect(parseTokenValue(`${value}0`, "tmat")).toBeNull();
    expect(parseTokenValue(value.toUpperCase(), "tmat")).toBeNull();
  });

  it("verifies a value against its keyed hash only with the same key", () => {
    const { value } = mintTokenValue(TOKEN_PREFIXES.consumerSecret);
    const hash = hashTokenValue(key, value);
    expect(hash).not.toContain(value.slice(38));
    expect(verifyTokenValue(key, value, hash)).toBe(true);
    expect(verifyTokenValue(only(randomBytes(32)), value, hash)).toBe(false);
    expect(verifyTokenValue(key, mintTokenValue(TOKEN_PREFIXES.consumerSecret).value, hash)).toBe(false);
    expect(verifyTokenValue(key, value, "short")).toBe(false);
  });
});

describe("hash key rotation", () => {
  const old = randomBytes(32);
  const rotated: HashKeys = { current: randomBytes(32), previous: [old] };

  it("hashes under the current key and verifies under every key, saying which matched", () => {
    const { value } = mintTokenValue(TOKEN_PREFIXES.accessToken);
    const before = hashTokenValue(only(old), value);
    expect(hashTokenValue(rotated, value)).toBe(hashTokenValue(only(rotated.current), value));
    expect(hashTokenValue(rotated, value)).not.toBe(before);
    expect(matchTokenValue(rotated, value, hashTokenValue(rotated, value))).toBe("current");
    expect(matchTokenValue(rotated, value, before)).toBe("previous");
    expect(verifyTokenValue(rotated, value, before)).toBe(true);
    // Dropped from the list, the old key verifies nothing any more.
    expect(matchTokenValue(only(rotated.current), value, before)).toBeNull();
    expect(matchTokenValue(rotated, mintTokenValue(TOKEN_PREFIXES.accessToken).value, before)).toBeNull();
  });

  it("remembers under which key a value verified, for as long as its record", () => {
    const verified = new VerifiedValues<object>();
    const { value } = mintTokenValue(TOKEN_PREFIXES.consumerSecret);
    const record = {};
    expect(verified.verify(rotated, record, value, hashTokenValue(only(old), value))).toBe("previous");
    // Recognised without hashing (a wrong stored hash no longer matters), still as "previous".
    expect(verified.known(record, value)).toBe("previous");
    expect(verified.verify(rotated, record, value, "not-the-hash")).toBe("previous");
    // The record made again with the hash under the current key is another record.
    const rehashed = {};
    expect(verified.verify(rotated, rehashed, value, hashTokenValue(rotated, value))).toBe("current");
  });
});

describe("sameValue", () => {
  it("is true for equal strings only, whatever position differs", () => {
    const { value } = mintTokenValue(TOKEN_PREFIXES.accessToken);
    expect(sameValue(value, `${value}`)).toBe(true);
    for (const at of [0, 5, 54, value.length - 1]) {
      const other = value.slice(0, at) + (value[at] === "0" ? "1" : "0") + value.slice(at + 1);
      expect(sameValue(value, other)).toBe(false);
    }
    expect(sameValue(value, value.slice(1))).toBe(false);
    expect(sameValue("", "")).toBe(true);
  });
});

describe("idOfShapedValue", () => {
  it("names the id of a value of the expected kind and shape, checksum unchecked", () => {
    const { id, value } = mintTokenValue(TOKEN_PREFIXES.accessToken);
    const badChecksum = value.slice(0, -1) + (value.at(-1) === "0" ? "1" : "0");
    expect(idOfShapedValue(value, "tmat")).toBe(id);
    expect(idOfShapedValue(badChecksum, "tmat")).toBe(id);
    expect(parseTokenValue(badChecksum, "tmat")).toBeNull();
    expect(idOfShapedValue(value, "tmrt")).toBeNull();
    expect(idOfShapedValue(value.slice(1), "tmat")).toBeNull();
    expect(idOfShapedValue(value.toUpperCase(), "tmat")).toBeNull();
  });
});

describe("VerifiedValues", () => {
  it("remembers per record the value that verified, and never another value", () => {
    const verified = new VerifiedValues<object>();
    const { id, value } = mintTokenValue(TOKEN_PREFIXES.accessToken);
    const forged = mintTokenValue(TOKEN_PREFIXES.accessToken, id).value;
    const record = {};
    const hash = hashTokenValue(key, value);
    expect(verified.known(record, value)).toBeNull();
    expect(verified.verify(key, record, forged, hash)).toBeNull();
    expect(verified.known(record, forged)).toBeNull();
    expect(verified.verify(key, record, value, hash)).toBe("current");
    expect(verified.known(record, value)).toBe("current");
    expect(verified.known({}, value)).toBeNull();
    // Recognised without the hash: even a wrong stored hash no longer matters for this record.
    expect(verified.verify(key, record, value, "not-the-hash")).toBe("current");
    expect(verified.verify(key, record, forged, hash)).toBeNull();
  });
});
