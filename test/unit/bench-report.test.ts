import { describe, expect, it } from "vitest";
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
