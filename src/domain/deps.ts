import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Database, Db } from "../db/client.js";
import type { ServiceSecrets } from "./service-secrets.js";

/** What domain functions need, wired explicitly by `buildApp()` (no container, no globals). */
export interface Deps {
  readonly config: Config;
  readonly database: Database;
  readonly db: Db;
  readonly secrets: ServiceSecrets;
  readonly log: Logger;
}
