import { afterAll, beforeAll, describe, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import {
  type Collector,
  disposeCollectors,
  type EventView,
  sleep,
  storedEvents,
  subscribeEvents,
  until,
} from "../support/events.js";
import { mustRegenerateToken } from "../support/keys.js";
import { clientCredentials, createWorld, idOf, newClient, revoke, type World } from "../support/oauth.js";

// Sweeps every 100 ms; EXPIRING_SOON 2 s ahead; expired and revoked rows purged 1 s later.
const ENV = { SWEEPER_INTERVAL_MS: "100", EXPIRING_SOON_WARNING: "2", TOKEN_RETENTION: "1" };

let t: TestApp;
let world: World;
/** One admin subscription for the whole file: the tests run concurrently, each on its own application. */
let stream: Collector;

beforeAll(async () => {
  t = await startTestApp({ issuerIsUrl: true, env: ENV });
  world = await createWorld(t);
  stream = await subscribeEvents(t, world.adminToken);
});
afterAll(async () => {
  await disposeCollectors();
  await t.stop();
});

/** What the live stream delivered about one token, as [type, reason]. */
const deliveredFor = (tokenId: string) =>
  stream.events.filter((e) => e.token?.id === tokenId).map((e) => [e.type, e.reason]);

const at = (instant: string | null | undefined) => new Date(instant!).getTime();

const rowExists = async (tokenId: string) =>
  (await t.app.deps.database.raw("select 1 from access_tokens where id = $1", [tokenId])).length === 1;

describe.concurrent("expiry sweeper", () => {
  it("announces EXPIRED once per token, close to its expiry, with the token's snapshot", async ({
    expect,
  }) => {
    const client = await newClient(world, { validityPeriod: 1 });
    const { access_token } = await clientCredentials(world, client);
    const [first, second] = (
      await storedEvents(t, "application_id = $1 and type = 'ISSUED'", [client.applicationId])
    ).map((e) => e.token!);
    expect(second!.id).toBe(idOf(access_token));
    await until(() => deliveredFor(second!.id).length === 2, "the second token's EXPIRED", 5_000);
    await sleep(300);

    const ofApplication = stream.events.filter((e) => e.applicationId === client.applicationId);
    expect(ofApplication).toEqual(await storedEvents(t, "application_id = $1", [client.applicationId]));
    expect(ofApplication.map((e) => [e.type, e.token?.id ?? null])).toEqual([
      ["KEYS_GENERATED", null],
      ["ISSUED", first!.id],
      ["ISSUED", second!.id],
      ["EXPIRED", first!.id],
      ["EXPIRED", second!.id],
    ]);
    for (const [i, token] of [first!, second!].entries()) {
      const expired = ofApplication[3 + i] as EventView;
      expect(expired).toMatchObject({ type: "EXPIRED", reason: null, keyType: "PRODUCTION", userId: null });
      expect(expired.token).toEqual(token);
      // Announced after the expiry instant, within a few sweeper rounds of it.
      const late = at(expired.occurredAt) - at(token.expiresAt);
      expect(late).toBeGreaterThanOrEqual(0);
      expect(late).toBeLessThan(1_000);
    }
  });

  it("warns EXPIRING_SOON once, ahead of EXPIRED, for a token living longer than the warning", async ({
    expect,
  }) => {
    const client = await newClient(world, { validityPeriod: 4 });
    const [issued] = await storedEvents(t, "application_id = $1 and type = 'ISSUED'", [client.applicationId]);
    const token = issued!.token!;
    await until(() => deliveredFor(token.id).length === 3, "EXPIRING_SOON and EXPIRED", 7_000);
    await sleep(300);

    expect(deliveredFor(token.id)).toEqual([
      ["ISSUED", null],
      ["EXPIRING_SOON", null],
      ["EXPIRED", null],
    ]);
    const ofToken = stream.events.filter((e) => e.token?.id === token.id);
    expect(ofToken).toEqual(await storedEvents(t, "token_id = $1", [token.id]));
    const [, soon, expired] = ofToken;
    expect(soon!.token).toEqual(token);
    expect(at(soon!.occurredAt)).toBeGreaterThanOrEqual(at(token.expiresAt) - 2_000);
    expect(at(soon!.occurredAt)).toBeLessThan(at(token.expiresAt));
    expect(at(expired!.occurredAt)).toBeGreaterThanOrEqual(at(token.expiresAt));
  });

  it("purges expired and revoked token rows after the retention period, keeping their events", async ({
    expect,
  }) => {
    const shortLived = await newClient(world, { validityPeriod: 1 });
    const [issued] = await storedEvents(t, "application_id = $1 and type = 'ISSUED'", [
      shortLived.applicationId,
    ]);
    const client = await newClient(world);
    const revokedValue = (await clientCredentials(world, client)).access_token;
    const kept = idOf((await clientCredentials(world, client)).access_token);
    await revoke(world, client, revokedValue);
    const gone = [issued!.token!.id, idOf(revokedValue)];
    // Inside the retention period the revoked row is still there.
    expect(await rowExists(gone[1]!)).toBe(true);

    await until(async () => !(await rowExists(gone[0]!)) && !(await rowExists(gone[1]!)), "the purge", 5_000);
    // The rows are gone; their events stay.
    const typesOf = async (id: string) => (await storedEvents(t, "token_id = $1", [id])).map((e) => e.type);
    expect(await typesOf(gone[0]!)).toEqual(["ISSUED", "EXPIRED"]);
    expect(await typesOf(gone[1]!)).toEqual(["ISSUED", "REVOKED"]);
    // Active tokens stay.
    expect(await rowExists(kept)).toBe(true);
  });

  it("ends a token once, by whichever comes first of its expiry and its grace period's end", async ({
    expect,
  }) => {
    // The key's first token expires 1 s after it was issued; the grace period, given 0.6 s later,
    // ends 0.6 s after that: the token has expired by then and gets no REVOKED on top of EXPIRED.
    const client = await newClient(world, { validityPeriod: 1 });
    const [initial] = await storedEvents(t, "application_id = $1 and type = 'ISSUED'", [
      client.applicationId,
    ]);
    const expiring = initial!.token!.id;
    await sleep(600);
    const regenerated = await mustRegenerateToken(t, world.owner.token, {
      applicationId: client.applicationId,
      keyType: "PRODUCTION",
      gracePeriod: 1,
    });
    await until(() => deliveredFor(expiring).length === 2, "the first token's EXPIRED", 5_000);
    // Expired, it leaves the grace-period work list (no end scheduled any more).
    expect(
      await t.app.deps.database.raw("select revoke_scheduled_at from access_tokens where id = $1", [
        expiring,
      ]),
    ).toEqual([{ revoke_scheduled_at: null }]);
    // Past the grace period's end, and a few sweeps more.
    await sleep(Math.max(0, at(regenerated.previousTokensValidUntil) - Date.now()) + 400);
    expect(deliveredFor(expiring)).toEqual([
      ["ISSUED", null],
      ["EXPIRED", null],
    ]);
    expect((await storedEvents(t, "token_id = $1", [expiring])).map((e) => e.type)).toEqual([
      "ISSUED",
      "EXPIRED",
    ]);
  });

  it("revokes a regenerated key's old tokens when the grace period ends, once each", async ({ expect }) => {
    const client = await newClient(world);
    const [initial] = await storedEvents(t, "application_id = $1 and type = 'ISSUED'", [
      client.applicationId,
    ]);
    const old = [initial!.token!.id, idOf((await clientCredentials(world, client)).access_token)];
    const regenerated = await mustRegenerateToken(t, world.owner.token, {
      applicationId: client.applicationId,
      keyType: "PRODUCTION",
      gracePeriod: 1,
    });
    const validUntil = at(regenerated.previousTokensValidUntil);
    // During the grace period the old tokens are not revoked yet.
    expect(await storedEvents(t, "application_id = $1 and type = 'REVOKED'", [client.applicationId])).toEqual(
      [],
    );
    await until(() => old.every((id) => deliveredFor(id).length === 2), "both REVOKED", 5_000);
    await sleep(300);

    for (const [id, issuedReason] of [
      [old[0]!, null],
      [old[1]!, "CLIENT_REQUEST"],
    ] as const) {
      expect(deliveredFor(id)).toEqual([
        ["ISSUED", issuedReason],
        ["REVOKED", "REGENERATED"],
      ]);
      const revoked = stream.events.find((e) => e.token?.id === id && e.type === "REVOKED")!;
      expect(at(revoked.occurredAt)).toBeGreaterThanOrEqual(validUntil);
    }
    expect(deliveredFor(regenerated.token.token.id)).toEqual([["ISSUED", "REGENERATED"]]);
    const ofApplication = stream.events.filter((e) => e.applicationId === client.applicationId);
    expect(ofApplication).toEqual(await storedEvents(t, "application_id = $1", [client.applicationId]));
  });
});
