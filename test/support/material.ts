import { startTestApp, type TestApp } from "./app.js";
import { dropDatabaseAt } from "./database.js";
import { uniqueName } from "./fixtures.js";
import { createSubscriber, LOGIN, loginAdmin } from "./graphql.js";
import {
  createScopedApi,
  createSubscribedApplication,
  type Issued,
  mustGenerateKeys,
  regenerateConsumerSecret,
} from "./keys.js";

/** Everything one owner holds after using the service a little: each credential kind once. */
export interface Material {
  adminToken: string;
  owner: { id: string; username: string; token: string; password: string };
  login: { accessToken: string; refreshToken: string };
  opaque: Issued;
  rotatedSecret: string;
  jwt: Issued;
}

export async function issueEverything(t: TestApp): Promise<Material> {
  const adminToken = await loginAdmin(t);
  const username = uniqueName("owner");
  const owner = { ...(await createSubscriber(t, adminToken, username)), username };
  const { login } = await t.client().request<any>(LOGIN, { input: { username, password: owner.password } });
  const api = await createScopedApi(t, adminToken, ["read"]);
  const app = await createSubscribedApplication(t, owner.token, api.id);
  const opaque = await mustGenerateKeys(t, owner.token, {
    applicationId: app.id,
    keyType: "PRODUCTION",
    scopes: ["read"],
    grantTypes: ["client_credentials", "password"],
  });
  const rotated = await regenerateConsumerSecret(t, owner.token, {
    applicationId: app.id,
    keyType: "PRODUCTION",
    gracePeriod: 600,
  });
  const jwtApp = await createSubscribedApplication(t, owner.token, api.id, { tokenFormat: "JWT" });
  const jwt = await mustGenerateKeys(t, owner.token, { applicationId: jwtApp.id, keyType: "SANDBOX" });
  return {
    adminToken,
    owner,
    login: { accessToken: login.accessToken, refreshToken: login.refreshToken },
    opaque,
    rotatedSecret: rotated.consumerSecret!,
    jwt,
  };
}

export interface Restarted {
  readonly after: TestApp;
  readonly m: Material;
}

/** Everything issued under `first`, then the same data (DATA_DIR or database) served by an app restarted under `then`. */
export async function restartedWith(
  first: Record<string, string>,
  then: Record<string, string>,
): Promise<Restarted> {
  const before = await startTestApp({ env: first });
  const m = await issueEverything(before);
  await before.stop({ keepData: true });
  const after = await startTestApp({ dataDir: before.dataDir, databaseUrl: before.databaseUrl, env: then });
  return { after, m };
}

export async function stopRestarted({ after }: Restarted): Promise<void> {
  await after.stop();
  await dropDatabaseAt(after.databaseUrl);
}
