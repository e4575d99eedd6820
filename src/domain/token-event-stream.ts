import { and, asc, desc, eq, gt, inArray, lt, or, type SQL } from "drizzle-orm";
import { z } from "zod";
import { applications, TOKEN_EVENT_TYPES, tokenEvents } from "../db/schema/index.js";
import type { Channel } from "../events/channel.js";
import type { EventHub } from "../events/hub.js";
import type { Deps } from "./deps.js";
import { UnauthenticatedError, ValidationError } from "./errors.js";
import { fromRow, type TokenEventRecord } from "./token-event.js";
import { parseInput } from "./validation.js";
import { type Auth, isAdmin, requireViewer, type Viewer } from "./viewer.js";

const Filter = z
  .object({
    types: z.array(z.enum(TOKEN_EVENT_TYPES)).max(TOKEN_EVENT_TYPES.length).nullish(),
    applicationId: z.uuid().nullish(),
    userId: z.uuid().nullish(),
  })
  .default({});
export type TokenEventFilter = z.input<typeof Filter>;
type ParsedFilter = z.output<typeof Filter>;

// An object, so that a bad cursor's ValidationError names the `after` argument.
const Cursor = z.object({
  after: z
    .string()
    .regex(/^[0-9]{1,18}$/, "must be an event id")
    .transform((v) => BigInt(v)),
});
const parseCursor = (after: string) => parseInput(Cursor, { after }).after;

/** SQL: the events matching the filter that the viewer may see. */
function eventCondition(deps: Deps, viewer: Viewer, filter: ParsedFilter): SQL | undefined {
  // Applications the viewer owns now, as a subquery (the live stream also remembers deleted ones).
  const owned = deps.db
    .select({ id: applications.id })
    .from(applications)
    .where(eq(applications.ownerId, viewer.id));
  const visible = isAdmin(viewer)
    ? undefined
    : or(eq(tokenEvents.userId, viewer.id), inArray(tokenEvents.applicationId, owned));
  return and(
    visible,
    filter.types?.length ? inArray(tokenEvents.type, filter.types) : undefined,
    filter.applicationId ? eq(tokenEvents.applicationId, filter.applicationId) : undefined,
    filter.userId ? eq(tokenEvents.userId, filter.userId) : undefined,
  );
}

/** History, newest first (a Relay-style page: `after` is the cursor of the last event seen). */
export async function listTokenEvents(
  deps: Deps,
  auth: Auth,
  args: { filter?: TokenEventFilter | null; first?: number | null; after?: string | null },
) {
  const viewer = requireViewer(auth);
  const filter = parseInput(Filter, args.filter ?? {});
  const first = args.first ?? 50;
  if (!Number.isInteger(first) || first < 1 || first > 500)
    throw new ValidationError("first", "first must be 1 to 500");
  const before = args.after ? parseCursor(args.after) : undefined;
  const rows = await deps.db
    .select()
    .from(tokenEvents)
    .where(
      and(
        eventCondition(deps, viewer, filter),
        before !== undefined ? lt(tokenEvents.id, before) : undefined,
      ),
    )
    .orderBy(desc(tokenEvents.id))
    .limit(first + 1);
  return { nodes: rows.slice(0, first).map(fromRow), hasNextPage: rows.length > first };
}

const REPLAY_PAGE = 500;

/**
 * The live stream: with `after`, first every later event from the log (in id order), then live
 * events from the hub. The hub channel opens before the replay starts, so nothing committed
 * meanwhile is lost, and events the replay already delivered are dropped from it, so nothing is
 * delivered twice. Visibility is checked per event; the stream ends when the viewer's own token
 * is revoked or expires (a user deleted, disabled or demoted mid-stream stops receiving).
 */
export function streamTokenEvents(
  deps: Deps,
  hub: EventHub,
  auth: Auth,
  args: { after?: string | null; filter?: TokenEventFilter | null },
  onOverflow: () => void,
): AsyncGenerator<TokenEventRecord> {
  let channel: Channel<TokenEventRecord> | undefined;
  let stopped = false;
  const open = () => {
    channel = hub.open(onOverflow);
    if (stopped) channel.close();
    return channel;
  };
  // An async generator queues `return()` until its next `yield`: while it awaits a live event, a
  // closed subscription would linger on the hub (and keep filtering events) until one matched.
  // Closing the channel first ends that wait at once.
  const stop = () => {
    stopped = true;
    channel?.close();
  };
  const events = replayThenLive(deps, auth, args, open);
  const stream: AsyncGenerator<TokenEventRecord> = {
    next: (...value) => events.next(...value),
    return: (value) => {
      stop();
      return events.return(value);
    },
    throw: (error) => {
      stop();
      return events.throw(error);
    },
    [Symbol.asyncIterator]: () => stream,
  };
  return stream;
}

async function* replayThenLive(
  deps: Deps,
  auth: Auth,
  args: { after?: string | null; filter?: TokenEventFilter | null },
  open: () => Channel<TokenEventRecord>,
): AsyncGenerator<TokenEventRecord> {
  const viewer = requireViewer(auth);
  const filter = parseInput(Filter, args.filter ?? {});
  const after = args.after != null ? parseCursor(args.after) : undefined;
  const visible = await visibility(deps, viewer);
  const channel = open();
  try {
    if (after !== undefined) {
      const replayed = new Set<string>();
      let cursor = after;
      for (;;) {
        const page = await deps.db
          .select()
          .from(tokenEvents)
          .where(gt(tokenEvents.id, cursor))
          .orderBy(asc(tokenEvents.id))
          .limit(REPLAY_PAGE);
        for (const row of page) {
          const event = fromRow(row);
          replayed.add(event.id);
          cursor = row.id;
          ensureSession(viewer, event);
          if (matches(event, filter) && (await visible(event))) yield event;
        }
        if (page.length < REPLAY_PAGE) break;
      }
      channel.discard((event) => replayed.has(event.id));
    }
    for await (const event of channel) {
      ensureSession(viewer, event);
      if (matches(event, filter) && (await visible(event))) yield event;
    }
  } finally {
    channel.close();
  }
}

function ensureSession(viewer: Viewer, event: TokenEventRecord): void {
  if (event.tokenId === viewer.tokenId && (event.type === "REVOKED" || event.type === "EXPIRED")) {
    throw new UnauthenticatedError("the session's access token was revoked or expired");
  }
}

function matches(event: TokenEventRecord, filter: ParsedFilter): boolean {
  if (filter.types?.length && !filter.types.includes(event.type)) return false;
  if (filter.applicationId && event.applicationId !== filter.applicationId) return false;
  if (filter.userId && event.userId !== filter.userId) return false;
  return true;
}

/**
 * Per-subscription visibility: admins see all; others their own user's events and their
 * applications' (ownership remembered for the stream, so the revocations of an application they
 * delete still reach them; new applications are looked up once).
 */
async function visibility(
  deps: Deps,
  viewer: Viewer,
): Promise<(event: TokenEventRecord) => Promise<boolean>> {
  if (isAdmin(viewer)) return async () => true;
  const owned = new Map<string, boolean>(
    (
      await deps.db
        .select({ id: applications.id })
        .from(applications)
        .where(eq(applications.ownerId, viewer.id))
    ).map((a) => [a.id, true]),
  );
  return async (event) => {
    if (event.userId === viewer.id) return true;
    if (!event.applicationId) return false;
    let mine = owned.get(event.applicationId);
    if (mine === undefined) {
      const [app] = await deps.db
        .select({ ownerId: applications.ownerId })
        .from(applications)
        .where(eq(applications.id, event.applicationId));
      mine = app?.ownerId === viewer.id;
      owned.set(event.applicationId, mine);
    }
    return mine;
  };
}
