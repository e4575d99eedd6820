import { connect, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { prepareAccessToken } from "../../src/domain/token.js";
import { TokenWriter } from "../../src/domain/token-writer.js";
import {
  clientCredentials,
  clientCredentialsRequest,
  newClient,
  type TestClient,
  useOAuthWorld,
} from "../support/oauth.js";

/**
 * Group commit on the token endpoint's hot path: tokens requested together are written together,
 * and every answered token is committed with its ISSUED event.
 */
// The sweeper's background statements would count as writes.
const f = useOAuthWorld({ SWEEPER_INTERVAL_MS: "3600000" });

const batchWrites = () => f.t.statements.filter((s) => s.includes("insert into access_tokens")).length;

/**
 * Sends one client_credentials request on each of `count` connections opened beforehand, all
 * written in the same turn of the event loop (the server shares this process's loop, so requests
 * sent through a client library would reach it one at a time). Resolves with the bodies.
 */
async function simultaneousTokenRequests(
  c: TestClient,
  count: number,
): Promise<{ status: number; body: string }[]> {
  const { hostname, port } = new URL(f.t.url);
  const basic = Buffer.from(`${encodeURIComponent(c.clientId)}:${encodeURIComponent(c.secret)}`).toString(
    "base64",
  );
  const body = "grant_type=client_credentials";
  const request =
    `POST /token HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAuthorization: Basic ${basic}\r\n` +
    `Content-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
  const sockets = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Socket>((resolve, reject) => {
          const socket = connect(Number(port), hostname, () => resolve(socket));
          socket.once("error", reject);
        }),
    ),
  );
  const answers = sockets.map(
    (socket) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const chunks: Buffer[] = [];
        socket.on("data", (chunk: Buffer) => chunks.push(chunk));
        socket.once("error", reject);
        socket.once("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          const [head = "", payload = ""] = text.split("\r\n\r\n");
          resolve({ status: Number(head.split(" ")[1]), body: payload });
        });
      }),
  );
  // Let the server accept every connection first: requests on sockets it has not accepted yet
  // would reach it one accept at a time.
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (const socket of sockets) socket.write(request);
  return Promise.all(answers);
}

const uuidOf = (value: string) => {
  const hex = value.split("_")[1] as string;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};

describe("POST /token under concurrency", () => {
  it("commits simultaneous requests in fewer writes than tokens, each with its row and one ISSUED event", async () => {
    // Once alone first: the client record is then cached, as it is for a client in steady use.
    expect((await clientCredentialsRequest(f.world, f.c)).status).toBe(200);
    f.t.resetStatements();
    const answers = await simultaneousTokenRequests(f.c, 24);
    expect(answers.map((a) => a.status)).toEqual(Array(24).fill(200));
    const tokens = answers.map((a) => JSON.parse(a.body).access_token as string);
    expect(new Set(tokens).size).toBe(24);
    expect(batchWrites()).toBeGreaterThan(0);
    expect(batchWrites()).toBeLessThan(24);
    const ids = tokens.map(uuidOf);
    const [rows] = await f.t.app.deps.database.raw<{ n: number }>(
      "select count(*)::int as n from access_tokens where id = any($1::uuid[]) and client_id = $2",
      [ids, f.c.clientId],
    );
    expect(rows?.n).toBe(24);
    const events = await f.t.app.deps.database.raw<{ token_id: string; n: number }>(
      "select token_id, count(*)::int as n from token_events where type = 'ISSUED' and token_id = any($1::uuid[]) group by token_id",
      [ids],
    );
    expect(events).toHaveLength(24);
    expect(events.every((e) => e.n === 1)).toBe(true);
  });

  it("announces each batched token's ISSUED event once, in commit order with other statements' events", async () => {
    const revoked = await clientCredentials(f.world, f.c);
    const heard: { id: number; type: string; token_id: string | null }[] = [];
    const stop = f.t.app.deps.bus.subscribe((event) => heard.push(event));
    try {
      const basic = Buffer.from(
        `${encodeURIComponent(f.c.clientId)}:${encodeURIComponent(f.c.secret)}`,
      ).toString("base64");
      // A revocation (its own statement and NOTIFY) races the batch.
      const [answers, revocation] = await Promise.all([
        simultaneousTokenRequests(f.c, 24),
        fetch(`${f.t.url}/revoke`, {
          method: "POST",
          headers: { authorization: `Basic ${basic}`, "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ token: revoked.access_token }),
        }),
      ]);
      expect(revocation.status).toBe(200);
      // PGlite announces the batch's events itself; PostgreSQL NOTIFYs them to every instance.
      const batches = f.t.statements.filter((s) => s.includes("insert into access_tokens"));
      expect(batches.length).toBeGreaterThan(0);
      const notifying = f.t.app.deps.database.driver === "postgres";
      expect(batches.every((s) => s.includes("pg_notify") === notifying)).toBe(true);
      await f.t.app.deps.bus.sync();
      const ids = answers.map((a) => uuidOf(JSON.parse(a.body).access_token as string));
      const issued = heard.filter((e) => e.type === "ISSUED" && ids.includes(e.token_id as string));
      expect(issued.map((e) => e.token_id).sort()).toEqual([...ids].sort());
      expect(heard.filter((e) => e.type === "REVOKED").map((e) => e.token_id)).toEqual([
        uuidOf(revoked.access_token),
      ]);
      // Event ids are the subscription cursor: heard in strictly increasing order.
      expect(heard.map((e) => e.id)).toEqual([...heard.map((e) => e.id)].sort((x, y) => x - y));
      expect(new Set(heard.map((e) => e.id)).size).toBe(heard.length);
    } finally {
      stop();
    }
  });
});

describe("access_tokens integrity", () => {
  it("refuses a token row whose application is not its key's", async () => {
    const other = await newClient(f.world);
    const insert = (applicationId: string) =>
      f.t.app.deps.database.raw(
        `insert into access_tokens (id, user_store_domain, kind, client_id, application_id, application_key_id,
           key_type, token_hash) values (gen_random_uuid(), 'PRIMARY', 'APPLICATION', $1, $2::uuid, $3::uuid,
           'PRODUCTION', 'integrity-' || md5(random()::text))`,
        [f.c.clientId, applicationId, f.c.keyId],
      );
    await expect(insert(other.applicationId)).rejects.toThrow(/access_tokens_application_key_fk/);
    await expect(insert(f.c.applicationId)).resolves.toBeDefined();
  });
});

describe("TokenWriter gathering (PGlite blocks the event loop while it writes)", () => {
  const prepare = () =>
    prepareAccessToken(f.t.app.deps, {
      kind: "APPLICATION",
      userStoreDomain: "PRIMARY",
      clientId: "gathering-test",
      scopes: [],
      issuedAt: new Date(),
      expiresAt: new Date(Date.now() + 3_600_000),
      reason: null,
    });
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it("holds a batch smaller than the last one until the rest of its callers arrive", async () => {
    const statements: string[] = [];
    const writer = new TokenWriter(
      f.t.app.deps.database,
      f.t.app.deps.log,
      1,
      (s) => statements.push(s),
      2_000,
    );
    const four = await Promise.all([prepare(), prepare(), prepare(), prepare()]);
    await Promise.all(four.map((token) => writer.write(token)));
    expect(statements).toHaveLength(1);

    // Two callers now, two more a moment later: one write for all four, not two.
    const [a, b, c, d] = await Promise.all([prepare(), prepare(), prepare(), prepare()]);
    const settled: string[] = [];
    const first = [a, b].map((token) => writer.write(token!).then(() => settled.push("early")));
    await sleep(50);
    expect(settled).toEqual([]);
    const later = [c, d].map((token) => writer.write(token!).then(() => settled.push("late")));
    await Promise.all([...first, ...later]);
    expect(statements).toHaveLength(2);
    expect(settled).toHaveLength(4);
  });

  it("writes a lone caller once the wait is over, and never waits without gathering", async () => {
    const statements: string[] = [];
    const gathering = new TokenWriter(
      f.t.app.deps.database,
      f.t.app.deps.log,
      1,
      (s) => statements.push(s),
      100,
    );
    const three = await Promise.all([prepare(), prepare(), prepare()]);
    await Promise.all(three.map((token) => gathering.write(token)));
    await gathering.write(await prepare());
    expect(statements).toHaveLength(2);

    const immediate: string[] = [];
    const plain = new TokenWriter(f.t.app.deps.database, f.t.app.deps.log, 1, (s) => immediate.push(s));
    const two = await Promise.all([prepare(), prepare()]);
    await Promise.all(two.map((token) => plain.write(token)));
    const [x, y] = await Promise.all([prepare(), prepare()]);
    const early = plain.write(x!);
    await sleep(50);
    await early;
    expect(immediate).toHaveLength(2); // the lone caller went alone, without waiting for company
    await plain.write(y!);
    expect(immediate).toHaveLength(3);
  });
});
