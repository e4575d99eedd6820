import { spawnSync } from "node:child_process";
import postgres from "postgres";
import { ROOT } from "./children.js";

/** The PostgreSQL server's version, for the report. */
export async function postgresVersion(url: string): Promise<string> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    const [row] = await sql<{ v: string }[]>`select current_setting('server_version') as v`;
    return `PostgreSQL ${row?.v}`;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** The commit measured, and whether src/ differed from it (read-only git: no index refresh). */
export function revision(): string {
  const git = (...args: string[]) =>
    spawnSync("git", ["--no-optional-locks", ...args], { cwd: ROOT, encoding: "utf8" });
  const head = git("rev-parse", "--short", "HEAD");
  if (head.status !== 0) return "unknown revision";
  const dirty = git("status", "--porcelain", "--", "src", "drizzle").stdout.trim() !== "";
  return `${head.stdout.trim()}${dirty ? " with uncommitted changes in src/" : ""}`;
}

/** The command that reproduces the run: `npm run bench` with the BENCH_* settings it was given. */
export function commandLine(env: NodeJS.ProcessEnv): string {
  const overrides = Object.entries(env)
    .filter(([name]) => name.startsWith("BENCH_"))
    .map(([name, value]) => `${name}=${value}`);
  return [...overrides, "npm run bench"].join(" ");
}
