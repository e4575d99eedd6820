import { clientCredentials } from "./client-credentials.js";
import type { Grant } from "./grant.js";
import { password } from "./password.js";
import { refreshToken } from "./refresh-token.js";

/** The grant registry: the token endpoint dispatches by `grant_type`. */
export const GRANTS: ReadonlyMap<string, Grant> = new Map(
  [clientCredentials, password, refreshToken].map((grant) => [grant.type, grant]),
);
