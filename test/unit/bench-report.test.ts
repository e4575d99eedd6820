import { describe, expect, it } from "vitest";
import {
  type GatewayCase,
  type GatewayMeta,
  type GatewayServer,
  renderGatewaySection,
} from "../../bench/gateway-report.js";
import type { LoadResult } from "../../bench/load.js";
import { pairedRounds } from "../../bench/report.js";

describe("pairedRounds (benchmark report)", () => {
  it("divides each round by the same round of the base and takes the median", () => {
    // The machine ran slower in round 2: both servers did, and so the ratio of that round holds.
    const paired = pairedRounds([9_000, 4_800, 10_000], [4_500, 2_000, 4_000]);
    expect(paired?.each).toEqual([2, 2.4, 2.5]);
    expect(paired?.median).toBe(2.4);
  });

  it("takes the lower middle of an even count, as the median rounds do", () => {
    expect(pairedRounds([1, 2, 3, 4], [1, 1, 1, 1])?.median).toBe(2);
  });

  it("gives nothing when the rounds do not pair up", () => {
    expect(pairedRounds([1, 2], [1])).toBeUndefined();
    expect(pairedRounds(undefined, [1])).toBeUndefined();
    expect(pairedRounds([], [])).toBeUndefined();
    expect(pairedRounds([1], [0])).toBeUndefined();
  });
});

describe("renderGatewaySection: the introspection references", () => {
  const load = (requestsPerSecond: number): LoadResult => ({
    connections: 16,
    seconds: 10,
    requestsPerSecond,
    p50: 2,
    p99: 9,
    ok: requestsPerSecond * 10,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    statusCodes: { "200": requestsPerSecond * 10 },
  });
  const introspection = (server: GatewayServer, requestsPerSecond: number): GatewayCase => ({
    endpoint: "introspect",
    server,
    connections: 16,
    load: load(requestsPerSecond),
    rounds: [requestsPerSecond],
  });
  const meta = {
    command: "npm run bench",
    revision: "abc1234",
    date: "2026-12-07 10:00 UTC",
    nproc: 2,
    cpu: "a CPU",
    node: "v20",
    postgres: "PostgreSQL not used",
    oidcProvider: "9",
    fastify: "5",
    autocannon: "8",
    warmup: 3,
    duration: 10,
    rounds: 1,
    tokens: 1000,
    originalUri: "/bench/1.0.0/items/42",
    pinning: true,
    problems: [],
    warnings: [],
  } satisfies GatewayMeta;
  const peerAndOurs = [introspection("oidc-provider", 4_000), introspection("pglite", 6_000)];

  it("gives the references their ratio, no verdict, and says what they are", () => {
    const section = renderGatewaySection(
      [...peerAndOurs, introspection("pglite-no-read", 7_000), introspection("bare-introspection", 14_000)],
      meta,
    );
    expect(section).toContain("- ours, PGlite at 16 connections: **1.50x** (**below the target**)");
    expect(section).toContain("- reference: ours, PGlite, no database read at 16 connections: **1.75x**\n");
    expect(section).toContain(
      "- reference: bare node:http (fixed introspection answer) at 16 connections: **3.50x**\n",
    );
    expect(section).toContain('The two "reference" rows (`BENCH_INTROSPECT_REFERENCES`');
  });

  it("leaves the explanation out of a run without them", () => {
    expect(renderGatewaySection(peerAndOurs, meta)).not.toContain("BENCH_INTROSPECT_REFERENCES");
  });
});
