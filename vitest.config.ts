import { defineConfig } from "vitest/config";

export default defineConfig({
  // graphql 16 ships CJS (main) and ESM (module); Node and our dependencies load the CJS one, so
  // resolve our own imports to it too: one graphql realm, as at run time.
  resolve: { alias: { graphql: "graphql/index.js" } },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    pool: "forks",
    // Two cores: more parallel files only queue up behind PGlite start-ups.
    maxWorkers: 2,
  },
});
