/**
 * Prints the GraphQL SDL to schema/schema.graphql (the committed API artefact).
 * With --check, fails when the committed file differs from the code.
 */
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { printSdl } from "../src/graphql/schema/index.js";

const file = fileURLToPath(new URL("../schema/schema.graphql", import.meta.url));
const sdl = printSdl();

if (process.argv.includes("--check")) {
  const committed = await readFile(file, "utf8").catch(() => "");
  if (committed !== sdl) {
    process.stderr.write("schema/schema.graphql is out of date: run `npm run schema:print` and commit it.\n");
    process.exit(1);
  }
  process.stdout.write("schema/schema.graphql is up to date.\n");
} else {
  await writeFile(file, sdl);
  process.stdout.write(`wrote ${file}\n`);
}
