import { randomUUID } from "node:crypto";
import { gql } from "graphql-request";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applicationKeys } from "../../src/db/schema/index.js";
import { startTestApp, type TestApp } from "../support/app.js";
import {
  createApiAs,
  createApplicationAs,
  createSubscriber,
  loginAdmin,
  SUBSCRIBE,
} from "../support/graphql.js";

const LIST = gql`
  query List {
    applications {
      ... on QueryApplicationsSuccess {
        data {
          id
          name
          owner { username }
          subscriptions { tier api { context version scopes { name } } }
          keys { keyType consumerKey }
        }
      }
    }
  }
`;

let t: TestApp;
let token: string;
const apiIds: string[] = [];

/** Creates `count` applications for the subscriber, each subscribed to two APIs and holding two keys. */
async function seedApplications(count: number, offset: number) {
  const client = t.client(token);
  for (let i = offset; i < offset + count; i++) {
    const app = await createApplicationAs(client, { name: `app-${i}` });
    for (const apiId of apiIds) await client.request(SUBSCRIBE, { input: { applicationId: app.id, apiId } });
    // Keys are generated through their own mutation in a later issue; rows are enough to load here.
    await t.app.deps.db.insert(applicationKeys).values(
      (["PRODUCTION", "SANDBOX"] as const).map((keyType) => ({
        applicationId: app.id,
        keyType,
        consumerKey: randomUUID(),
        grantTypes: ["client_credentials"],
      })),
    );
  }
}

async function statementsFor(): Promise<{ count: number; apps: any[] }> {
  t.resetStatements();
  const { applications } = await t.client(token).request<any>(LIST);
  return { count: t.statements.length, apps: applications.data };
}

beforeAll(async () => {
  // The sweeper's own statements would be counted too: keep it out of the measurement.
  t = await startTestApp({ env: { SWEEPER_INTERVAL_MS: "3600000" } });
  const admin = t.client(await loginAdmin(t));
  for (const [context, scope] of [
    ["/orders", "orders:read"],
    ["/billing", "billing:read"],
  ] as const) {
    apiIds.push(
      (await createApiAs(admin, { name: context, context, version: "v1", scopes: [{ name: scope }] })).id,
    );
  }
  token = (await createSubscriber(t, await loginAdmin(t), "batcher")).token;
});
afterAll(() => t.stop());

describe("list queries are batched", () => {
  it("runs the same number of SQL statements for 5 and for 50 applications with subscriptions and keys", async () => {
    await seedApplications(5, 0);
    const small = await statementsFor();
    expect(small.apps).toHaveLength(5);

    await seedApplications(45, 5);
    const large = await statementsFor();
    expect(large.apps).toHaveLength(50);
    expect(large.apps[49]).toMatchObject({
      name: "app-49",
      owner: { username: "batcher" },
      subscriptions: [
        { tier: "Unlimited", api: { context: "/orders", version: "v1", scopes: [{ name: "orders:read" }] } },
        {
          tier: "Unlimited",
          api: { context: "/billing", version: "v1", scopes: [{ name: "billing:read" }] },
        },
      ],
      keys: [{ keyType: "PRODUCTION" }, { keyType: "SANDBOX" }],
    });
    // auth (1) + applications (1) + owners, subscriptions, keys (1 each) + APIs (1) + scopes (1)
    expect(large.count).toBe(small.count);
    expect(large.count).toBe(7);
  });
});
