import * as crypto from "node:crypto";
import { describe, expect, it, vi } from "vitest";

// Counts scrypt runs (each one is the whole cost of a password check), calling the real one.
vi.mock("node:crypto", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:crypto")>();
  return { ...real, scrypt: vi.fn(real.scrypt) };
});

const { burnPasswordCheck, hashPassword, verifyPassword } = await import("../../src/domain/password.js");

describe("password checks", () => {
  it("cost one scrypt for an unknown username from the very first one, as for a real user", async () => {
    const scrypt = vi.mocked(crypto.scrypt);
    expect(await burnPasswordCheck("guess")).toBe(false);
    expect(scrypt).toHaveBeenCalledTimes(1);
    const stored = await hashPassword("the-password");
    scrypt.mockClear();
    expect(await verifyPassword("guess", stored)).toBe(false);
    expect(scrypt).toHaveBeenCalledTimes(1);
    expect(await verifyPassword("the-password", stored)).toBe(true);
    scrypt.mockClear();
    expect(await burnPasswordCheck("the-password")).toBe(false);
    expect(scrypt).toHaveBeenCalledTimes(1);
  });
});
