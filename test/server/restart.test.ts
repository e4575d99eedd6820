import { gql } from "graphql-request";
import { afterAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../support/app.js";
import { dropDatabaseAt } from "../support/database.js";
import {
  createApiAs,
  createApplicationAs,
  createSubscriber,
  loginAdmin,
  SUBSCRIBE,
} from "../support/graphql.js";

const MINE = gql`
  {
    me { ... on User { username } }
    applications { ... on QueryApplicationsSuccess { data { name subscriptions { api { context } } } } }
  }
`;

let second: TestApp | undefined;
afterAll(async () => {
  await second?.stop();
  // Started on the first app's database, which a test app does not drop when it did not create it.
  await dropDatabaseAt(second?.databaseUrl);
});

describe("restart", () => {
  it("keeps users, applications, subscriptions, tokens and service secrets", async () => {
    const first = await startTestApp();
    const admin = await loginAdmin(first);
    const api = await createApiAs(first.client(admin), {
      name: "Weather",
      context: "/weather",
      version: "2.0",
    });
    const erin = await createSubscriber(first, admin, "erin");
    const app = await createApplicationAs(first.client(erin.token), { name: "forecaster" });
    await first.client(erin.token).request(SUBSCRIBE, { input: { applicationId: app.id, apiId: api.id } });
    await first.stop({ keepData: true });

    second = await startTestApp({ dataDir: first.dataDir, databaseUrl: first.databaseUrl });
    // The token issued before the restart still verifies: the hashing key was kept.
    const after = await second.client(erin.token).request<any>(MINE);
    expect(after).toEqual({
      me: { username: "erin" },
      applications: { data: [{ name: "forecaster", subscriptions: [{ api: { context: "/weather" } }] }] },
    });
    const admins = await second.app.deps.database.raw<{ n: number }>(
      "select count(*)::int as n from users where 'admin' = any(roles)",
    );
    expect(admins[0]?.n).toBe(1);
  });
});
