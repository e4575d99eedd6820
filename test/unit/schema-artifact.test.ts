import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { printSdl } from "../../src/graphql/schema/index.js";

describe("schema/schema.graphql", () => {
  it("matches the schema the code builds (run `npm run schema:print` after a change)", async () => {
    const committed = await readFile(new URL("../../schema/schema.graphql", import.meta.url), "utf8");
    expect(committed).toBe(printSdl());
  });
});
