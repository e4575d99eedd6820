import { randomBytes } from "node:crypto";
import { decodeProtectedHeader } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { SigningKeyUnavailableError } from "../../src/domain/signing-key.js";
import { startTestApp, type TestApp } from "../support/app.js";
import { mustRegenerateToken, ROTATE_SIGNING_KEY, regenerateToken, run } from "../support/keys.js";
import { type Restarted, restartedWith, stopRestarted } from "../support/material.js";

const K1 = randomBytes(32).toString("hex");
const K2 = randomBytes(32).toString("hex");
const ring = (keys: string) => ({ TOKEN_PERSISTENCE: "encrypt", TOKEN_ENCRYPTION_KEYS: keys });
const ONLY_K1 = ring(`k1:${K1}`);
const ONLY_K2 = ring(`k2:${K2}`);

/** Instances with different key rings, played by restarts on one database (or DATA_DIR). */
function fleet() {
  const state = {} as { current: Restarted };
  const restartWith = async (env: Record<string, string>) => {
    const { after, m } = state.current;
    await after.stop({ keepData: true });
    const next = await startTestApp({ dataDir: after.dataDir, databaseUrl: after.databaseUrl, env });
    state.current = { after: next, m };
    return next;
  };
  /** Every signing key, oldest first, as `<kid>:<encryption key id>`. */
  const kids = async (t: TestApp) =>
    (
      await t.app.deps.database.raw<{ kid: string; encryption_key_id: string }>(
        "select kid, encryption_key_id from signing_keys order by created_at",
      )
    ).map((row) => `${row.kid}:${row.encryption_key_id}`);
  const jwtInput = () => ({ applicationId: state.current.m.jwt.key.applicationId, keyType: "SANDBOX" });
  /** A JWT through the public API (regenerateToken), and the kid it was signed with. */
  const jwtKid = async (t: TestApp) =>
    decodeProtectedHeader(
      (await mustRegenerateToken(t, state.current.m.owner.token, jwtInput())).token.accessToken,
    ).kid!;
  const refusals = (t: TestApp) =>
    t.logs
      .map((line) => JSON.parse(line))
      .filter((entry) => entry.level === 50 && /signs no JWT/.test(entry.msg ?? ""));
  return { state, restartWith, kids, jwtInput, jwtKid, refusals };
}

const claims = () => ({ iss: "test", sub: "test", exp: Math.floor(Date.now() / 1000) + 60 });

afterEach(() => {
  vi.restoreAllMocks();
});

describe("instances whose key rings share no key", () => {
  const f = fleet();
  beforeAll(async () => {
    f.state.current = await restartedWith(ONLY_K1, ONLY_K2);
  });
  afterAll(() => stopRestarted(f.state.current));

  it("replaces a key it cannot open once; the other instance then refuses to sign, for as long as the rings share no key", async () => {
    const { m, after: k2 } = f.state.current;
    const first = decodeProtectedHeader(m.jwt.token.accessToken).kid!;
    // The k2 instance cannot open the k1 key: replaced once (as a key lost from its ring would be).
    const second = await f.jwtKid(k2);
    expect(await f.kids(k2)).toEqual([`${first}:k1`, `${second}:k2`]);

    // The k1 instance cannot open the k2 key, whose maker could not open the k1 key before it.
    const k1 = await f.restartWith(ONLY_K1);
    const before = Date.now();
    await expect(regenerateToken(k1, m.owner.token, f.jwtInput())).rejects.toThrow(/Unexpected error/);
    const refused = Date.now();
    await expect(regenerateToken(k1, m.owner.token, f.jwtInput())).rejects.toThrow(/Unexpected error/);
    expect(await f.kids(k1)).toEqual([`${first}:k1`, `${second}:k2`]);
    // Logged once a minute, not once a request; with the kid and key id, never a key.
    expect(f.refusals(k1)).toEqual([expect.objectContaining({ kid: second, encryptionKeyId: "k2" })]);
    for (const secret of [K1, K2]) expect(k1.logs.join("")).not.toContain(secret);
    // It still publishes the fleet's keys and issues opaque tokens.
    const jwks = (await (await fetch(`${k1.url}/.well-known/jwks.json`)).json()) as {
      keys: { kid: string }[];
    };
    expect(jwks.keys.map((key) => key.kid)).toEqual([second, first]);
    const opaque = await mustRegenerateToken(k1, m.owner.token, {
      applicationId: m.opaque.key.applicationId,
      keyType: "PRODUCTION",
    });
    expect(opaque.token.accessToken).toMatch(/^tmat_/);

    // ready() (before a transaction that signs) looks again when the refusal would lapse within
    // seconds, so that signing in the transaction never reads (on PGlite it would wait for ever).
    const now = vi.spyOn(Date, "now");
    now.mockReturnValue(refused + 52_000);
    expect(before + 60_000).toBeGreaterThan(refused + 52_000);
    k1.resetStatements();
    await k1.app.deps.signer.ready();
    expect(k1.statements.some((sql) => /from "signing_keys"/.test(sql))).toBe(true);
    now.mockReturnValue(refused + 65_000);
    k1.resetStatements();
    await expect(k1.app.deps.signer.signAccessToken(claims())).rejects.toBeInstanceOf(
      SigningKeyUnavailableError,
    );
    expect(k1.statements).toEqual([]);

    // Minutes later, still refused (no time lets the rings agree), and said again.
    now.mockReturnValue(refused + 20 * 60_000);
    await expect(k1.app.deps.signer.signAccessToken(claims())).rejects.toBeInstanceOf(
      SigningKeyUnavailableError,
    );
    now.mockRestore();
    expect(await f.kids(k1)).toEqual([`${first}:k1`, `${second}:k2`]);
    expect(f.refusals(k1)).toHaveLength(3);

    // An admin's rotation gives the fleet a key the k1 instance holds: it signs again at once.
    const rotated = await run(k1, m.adminToken, ROTATE_SIGNING_KEY);
    expect(rotated).toMatchObject({ __typename: "RotateSigningKeyPayload" });
    expect(await f.jwtKid(k1)).toBe(rotated.kid);

    // And with a key in common, every instance signs with the fleet's key, replacing nothing.
    const fixed = await f.restartWith(ring(`k2:${K2},k1:${K1}`));
    expect(await f.jwtKid(fixed)).toBe(rotated.kid);
    expect(await f.kids(fixed)).toEqual([`${first}:k1`, `${second}:k2`, `${rotated.kid}:k1`]);
  });
});

describe("changing the key ring instance by instance (rings that overlap)", () => {
  const f = fleet();
  beforeAll(async () => {
    // Old instances hold k1; new ones put k2 first and keep k1.
    f.state.current = await restartedWith(ONLY_K1, ring(`k2:${K2},k1:${K1}`));
  });
  afterAll(() => stopRestarted(f.state.current));

  it("an old instance replaces a key sealed under the new key once, and every instance opens that one", async () => {
    const { m, after: upgraded } = f.state.current;
    const first = decodeProtectedHeader(m.jwt.token.accessToken).kid!;
    // Rotated on an upgraded instance (twice: a fresh key replacing a fresh key is no sign of
    // rings that share nothing): sealed under k2, which old instances lack.
    await run(upgraded, m.adminToken, ROTATE_SIGNING_KEY);
    const rotated = await run(upgraded, m.adminToken, ROTATE_SIGNING_KEY);
    const old = await f.restartWith(ONLY_K1);
    const replaced = await f.jwtKid(old);
    expect(replaced).not.toBe(rotated.kid);
    expect(f.refusals(old)).toEqual([]);
    // The upgraded instances open the k1 key the old one made: nothing more is replaced.
    const back = await f.restartWith(ring(`k2:${K2},k1:${K1}`));
    expect(await f.jwtKid(back)).toBe(replaced);
    const keys = await f.kids(back);
    expect(keys).toHaveLength(4);
    expect(keys[0]).toBe(`${first}:k1`);
    expect(keys.slice(2)).toEqual([`${rotated.kid}:k2`, `${replaced}:k1`]);
  });
});
