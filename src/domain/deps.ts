import type { Logger } from "pino";
import type { Config } from "../config.js";
import type { Database, Db } from "../db/client.js";
import type { EventBus } from "../events/bus.js";
import type { EventHub } from "../events/hub.js";
import type { Metrics } from "../metrics.js";
import type { FailureLimiter } from "./rate-limit.js";
import type { ServiceSecrets } from "./service-secrets.js";
import type { Signer } from "./signing-key.js";
import type { TokenReader } from "./token-reader.js";
import type { TokenWriter } from "./token-writer.js";

/** What domain functions need, wired explicitly by `buildApp()` (no container, no globals). */
export interface Deps {
  readonly config: Config;
  readonly database: Database;
  readonly db: Db;
  readonly secrets: ServiceSecrets;
  readonly log: Logger;
  /** Signs and verifies JWT access tokens with the rotating signing key. */
  readonly signer: Signer;
  /** Failed credential checks, per principal and per source. */
  readonly limiter: FailureLimiter;
  /** Committed token events from every instance. */
  readonly bus: EventBus;
  /** Live token event subscribers of this instance. */
  readonly hub: EventHub;
  readonly metrics: Metrics;
  /** Batched, durable writes of tokens issued on the token endpoint. */
  readonly writer: TokenWriter;
  /** Batched reads of tokens by id (introspection). */
  readonly reader: TokenReader;
}
