import { type Client, createClient } from "graphql-ws";
import WebSocket from "ws";
import type { TestApp } from "./app.js";
import { createApiAs, createApplicationAs, SUBSCRIBE } from "./graphql.js";

/** Every field of `TokenEvent`, the snapshot of its token included. */
export const EVENT_FIELDS =
  "id type reason occurredAt applicationId keyType userId token { id kind keyType applicationId userId scopes expiresAt }";

export const TOKEN_EVENTS_SUBSCRIPTION = `subscription TokenEvents($after: ID, $filter: TokenEventFilter) {
  tokenEvents(after: $after, filter: $filter) { ${EVENT_FIELDS} }
}`;

/** A `TokenEvent` as it arrives over the wire. */
export interface EventView {
  id: string;
  type: string;
  reason: string | null;
  occurredAt: string;
  applicationId: string | null;
  keyType: string | null;
  userId: string | null;
  token: {
    id: string;
    kind: string;
    keyType: string | null;
    applicationId: string | null;
    userId: string | null;
    scopes: string[];
    expiresAt: string | null;
  } | null;
}

/** A live `tokenEvents` subscription over a real graphql-ws client, collecting what it receives. */
export interface Collector {
  readonly client: Client;
  /** Events received, in arrival order. */
  readonly events: EventView[];
  /** What ended the stream with an error: GraphQL errors (an array) or the socket's CloseEvent. */
  readonly errors: unknown[];
  /** True once the server completed the stream. */
  readonly completed: () => boolean;
  /** The close codes and reasons of the client's socket, in order. */
  readonly closes: { code: number; reason: string }[];
  /** Closes the client; resolves once the server has dropped the subscription. */
  dispose(): Promise<void>;
}

const live = new Set<{ t: TestApp; collector: Collector }>();

/** Subscribers the server's event hub currently fans out to. */
export const hubSubscribers = (t: TestApp) => t.app.deps.hub.subscribers;

/**
 * Subscribes to `tokenEvents` as `token` (undefined: no credentials) and resolves once the
 * server's event hub delivers to the new subscription, so that every event committed afterwards
 * reaches it (or once the stream ended). Nothing else may open or close subscriptions on `t`
 * meanwhile.
 */
export async function subscribeEvents(
  t: TestApp,
  token: string | undefined,
  variables: Record<string, unknown> = {},
): Promise<Collector> {
  const before = hubSubscribers(t);
  const events: EventView[] = [];
  const errors: unknown[] = [];
  const closes: { code: number; reason: string }[] = [];
  let completed = false;
  const client = createClient({
    url: t.graphqlUrl.replace(/^http/, "ws"),
    webSocketImpl: WebSocket,
    connectionParams: token === undefined ? {} : { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    on: { closed: (event) => closes.push(closeOf(event)) },
  });
  client.subscribe<{ tokenEvents: EventView }>(
    { query: TOKEN_EVENTS_SUBSCRIPTION, variables },
    {
      next: (value) => {
        if (value.data) events.push(value.data.tokenEvents);
        else errors.push(value.errors);
      },
      error: (error) => errors.push(error),
      complete: () => {
        completed = true;
      },
    },
  );
  const ended = () => completed || errors.length > 0;
  const collector: Collector = {
    client,
    events,
    errors,
    closes,
    completed: () => completed,
    async dispose() {
      live.delete(entry);
      const open = hubSubscribers(t);
      const wasLive = !ended();
      await client.dispose();
      if (wasLive) await until(() => hubSubscribers(t) < open, "the server to drop the subscription");
    },
  };
  const entry = { t, collector };
  live.add(entry);
  await until(() => hubSubscribers(t) > before || ended(), "the subscription to go live");
  return collector;
}

/** Disposes every collector still open (for afterEach). */
export async function disposeCollectors(): Promise<void> {
  const entries = [...live];
  live.clear();
  await Promise.all(entries.map(({ collector }) => collector.client.dispose()));
  for (const t of new Set(entries.map((e) => e.t))) {
    await until(() => hubSubscribers(t) === 0, "the server to drop every subscription");
  }
}

function closeOf(event: unknown): { code: number; reason: string } {
  const { code, reason } = event as { code: number; reason: string | Buffer };
  return { code, reason: String(reason) };
}

/** One scrape of GET /metrics: the Prometheus text and its samples by series (`name{labels}`). */
export interface Scrape {
  readonly status: number;
  readonly contentType: string | null;
  readonly text: string;
  readonly samples: ReadonlyMap<string, number>;
}

export async function scrapeMetrics(t: TestApp): Promise<Scrape> {
  const response = await fetch(`${t.url}/metrics`);
  const text = await response.text();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return { status: response.status, contentType: response.headers.get("content-type"), text, samples };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 10 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what = "the condition",
  timeoutMs = 5_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * The events matching `where` as the API must show them, built straight from token_events rows
 * (in id order): what a subscriber or the history query must return, field for field.
 */
export async function storedEvents(t: TestApp, where = "true", params: unknown[] = []): Promise<EventView[]> {
  const rows = await t.app.deps.database.raw<{
    id: string;
    type: string;
    reason: string | null;
    occurred_at: Date;
    token_id: string | null;
    token_kind: string | null;
    key_type: string | null;
    application_id: string | null;
    user_id: string | null;
    scopes: string[] | null;
    expires_at: Date | null;
  }>(
    `select id::text, type, reason, occurred_at, token_id, token_kind, key_type, application_id, user_id, scopes, expires_at
     from token_events where ${where} order by token_events.id`,
    params,
  );
  return rows.map((row) => ({
    id: row.id,
    type: row.type,
    reason: row.reason,
    occurredAt: new Date(row.occurred_at).toISOString(),
    applicationId: row.application_id,
    keyType: row.key_type,
    userId: row.user_id,
    token: row.token_id
      ? {
          id: row.token_id,
          kind: row.token_kind!,
          keyType: row.key_type,
          applicationId: row.application_id,
          userId: row.user_id,
          scopes: row.scopes ?? [],
          expiresAt: row.expires_at ? new Date(row.expires_at).toISOString() : null,
        }
      : null,
  }));
}

/** The id of the newest event, the cursor to resume after ("0" when there is none). */
export async function latestEventId(t: TestApp): Promise<string> {
  const [row] = await t.app.deps.database.raw<{ id: string }>(
    "select coalesce(max(id), 0)::text as id from token_events",
  );
  return row!.id;
}

/**
 * An application (named `name`, created by `admin`) subscribed to an API of 100 scopes of 90
 * characters: an event naming them all is over NOTIFY's 8000 bytes.
 */
export async function wideApplication(
  t: TestApp,
  admin: string,
  name = "wide",
): Promise<{ scopes: string[]; app: { id: string } }> {
  const scopes = Array.from(
    { length: 100 },
    (_, i) => `scope-${String(i).padStart(3, "0")}-${"x".repeat(80)}`,
  );
  const api = await createApiAs(t.client(admin), {
    name,
    context: `/${name}`,
    version: "v1",
    scopes: scopes.map((scope) => ({ name: scope })),
  });
  const app = await createApplicationAs(t.client(admin), { name });
  await t.client(admin).request(SUBSCRIBE, { input: { applicationId: app.id, apiId: api.id } });
  return { scopes, app };
}
