import { and, asc, desc, eq, gt, inArray, lt, or, type SQL, sql } from "drizzle-orm";
import { z } from "zod";
import { MAX_TIMER_MS } from "../config.js";
import { accessTokens, applications, TOKEN_EVENT_TYPES, tokenEvents } from "../db/schema/index.js";
import type { Channel } from "../events/channel.js";
import type { EventHub } from "../events/hub.js";
import { LiveSource, type LiveStream } from "../events/live-stream.js";
import type { Deps } from "./deps.js";
import { UnauthenticatedError, ValidationError } from "./errors.js";
import { isActive } from "./token.js";
import { fromRow, type TokenEventRecord } from "./token-event.js";
import { parseInput } from "./validation.js";
import { type Auth, isAdmin, requireViewer, type Viewer } from "./viewer.js";

const Filter = z
  .object({
    types: z.array(z.enum(TOKEN_EVENT_TYPES)).max(TOKEN_EVENT_TYPES.length).nullish(),
    // Lower-cased: the live stream compares ids as strings, the history query as uuids.
    applicationId: z.uuid().toLowerCase().nullish(),
    userId: z.uuid().toLowerCase().nullish(),
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
 * is revoked (its REVOKED event) or expires (at its expiry time, not when the sweeper announces
 * it), so a user deleted, disabled or demoted mid-stream stops receiving. Live events are handed
 * on synchronously as the hub pushes them, unless a check must read the database (an
 * application not seen before): later events wait for it, in order.
 */
export function streamTokenEvents(
  deps: Deps,
  hub: EventHub,
  auth: Auth,
  args: { after?: string | null; filter?: TokenEventFilter | null },
  onOverflow: () => void,
): LiveStream<TokenEventRecord> {
  return new TokenEventStream(deps, hub, auth, args, onOverflow);
}

class TokenEventStream extends LiveSource<TokenEventRecord> {
  private channel: Channel<TokenEventRecord> | undefined;
  private stopped = false;
  /** Ends the stream when the viewer's token expires. */
  private sessionTimer: NodeJS.Timeout | undefined;
  private sessionExpired = false;

  constructor(
    private readonly deps: Deps,
    private readonly hub: EventHub,
    private readonly auth: Auth,
    private readonly args: { after?: string | null; filter?: TokenEventFilter | null },
    private readonly onOverflow: () => void,
  ) {
    super();
  }

  protected async run(): Promise<void> {
    const viewer = requireViewer(this.auth);
    const filter = parseInput(Filter, this.args.filter ?? {});
    const after = this.args.after != null ? parseCursor(this.args.after) : undefined;
    // The channel opens before the session is confirmed (in follow): a revocation committed after
    // the viewer was authenticated then either reaches the channel or shows in that read. Opened
    // after it, the REVOKED event could pass in between, unseen, and the stream never end.
    const channel = this.hub.open(this.onOverflow);
    this.channel = channel;
    try {
      await this.follow(channel, viewer, filter, after);
    } finally {
      clearTimeout(this.sessionTimer);
      channel.close();
    }
    if (this.sessionExpired) throw sessionEnded();
  }

  private async follow(
    channel: Channel<TokenEventRecord>,
    viewer: Viewer,
    filter: ParsedFilter,
    after: bigint | undefined,
  ): Promise<void> {
    const left = await confirmSession(this.deps, viewer);
    if (left !== null) TokenEventStream.endSessionAt(this, performance.now() + left);
    const visible = await visibility(this.deps, viewer);
    if (this.stopped) return;
    /** The last id the replay read: live events up to it were replayed or are not shown. */
    let replayedUpTo: bigint | undefined;
    if (after !== undefined) {
      // Only what this stream could show (and the viewer's own token's events, which end it),
      // chosen by the database: a resumption from far back reads no one else's events.
      // (No condition at all, an admin without a filter: every event.)
      const condition = eventCondition(this.deps, viewer, filter);
      const shown = condition && or(eq(tokenEvents.tokenId, viewer.tokenId), condition);
      replayedUpTo = await replay(this.deps, after, shown, async (event) => {
        ensureSession(viewer, event);
        if (!this.stopped && matches(event, filter) && (await visible(event))) await this.emit(event);
        return !this.stopped;
      });
      const upTo = replayedUpTo;
      if (upTo !== undefined) channel.discard((event) => BigInt(event.id) <= upTo);
    }
    await channel.consume((event) => {
      // The hub hands events on in id order: one the replay covered (its notice came after the
      // discard above) is dropped, and once past the replay, no more checks.
      if (replayedUpTo !== undefined) {
        if (BigInt(event.id) <= replayedUpTo) return;
        replayedUpTo = undefined;
      }
      ensureSession(viewer, event);
      if (!matches(event, filter)) return;
      const mine = visible(event);
      if (mine === true) return this.emit(event);
      if (mine !== false) return mine.then((yes) => (yes ? this.emit(event) : undefined));
    });
  }

  /**
   * Ends the stream at `endsAt` (performance.now() time: a wall-clock step moves nothing), in
   * steps of at most MAX_TIMER_MS; a timer that fires early is armed again. Static, with the
   * stream as the timer's argument: no closure per stream.
   */
  private static endSessionAt(stream: TokenEventStream, endsAt: number): void {
    const left = endsAt - performance.now();
    if (left > 0) {
      stream.sessionTimer = setTimeout(
        TokenEventStream.endSessionAt,
        Math.min(left, MAX_TIMER_MS),
        stream,
        endsAt,
      ).unref();
      return;
    }
    stream.sessionExpired = true;
    stream.stop();
  }

  protected stop(): void {
    this.stopped = true;
    this.channel?.close();
  }

  protected overflow(): void {
    this.channel?.overflow();
  }
}

/**
 * Reads the log after `cursor` in id order (the events `where` admits), page by page, while
 * `each` returns true; returns the last id read (undefined: none).
 */
async function replay(
  deps: Deps,
  cursor: bigint,
  where: SQL | undefined,
  each: (event: TokenEventRecord) => Promise<boolean>,
): Promise<bigint | undefined> {
  let last: bigint | undefined;
  for (;;) {
    const page = await deps.db
      .select()
      .from(tokenEvents)
      .where(and(gt(tokenEvents.id, cursor), where))
      .orderBy(asc(tokenEvents.id))
      .limit(REPLAY_PAGE);
    for (const row of page) {
      last = row.id;
      cursor = row.id;
      if (!(await each(fromRow(row)))) return last;
    }
    if (page.length < REPLAY_PAGE) return last;
  }
}

const sessionEnded = () => new UnauthenticatedError("the session's access token was revoked or expired");

function ensureSession(viewer: Viewer, event: TokenEventRecord): void {
  if (event.tokenId === viewer.tokenId && (event.type === "REVOKED" || event.type === "EXPIRED")) {
    throw sessionEnded();
  }
}

/**
 * Throws unless the viewer's token is still active (read after the stream's channel opened);
 * returns the milliseconds it has left by the database's clock, the one that issued it and that
 * judges it elsewhere (null: it never ends). The earlier of expiry and a grace period's end.
 */
async function confirmSession(deps: Deps, viewer: Viewer): Promise<number | null> {
  const [active] = await deps.db
    .select({
      left: sql<
        string | null
      >`extract(epoch from least(${accessTokens.expiresAt}, ${accessTokens.revokeScheduledAt}) - now()) * 1000`,
    })
    .from(accessTokens)
    .where(and(eq(accessTokens.id, viewer.tokenId), isActive()));
  if (!active) throw sessionEnded();
  return active.left === null ? null : Number(active.left);
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
): Promise<(event: TokenEventRecord) => boolean | Promise<boolean>> {
  if (isAdmin(viewer)) return () => true;
  const owned = new Map<string, boolean>(
    (
      await deps.db
        .select({ id: applications.id })
        .from(applications)
        .where(eq(applications.ownerId, viewer.id))
    ).map((a) => [a.id, true]),
  );
  const lookUp = async (applicationId: string) => {
    const [app] = await deps.db
      .select({ ownerId: applications.ownerId })
      .from(applications)
      .where(eq(applications.id, applicationId));
    const mine = app?.ownerId === viewer.id;
    owned.set(applicationId, mine);
    return mine;
  };
  return (event) => {
    if (event.userId === viewer.id) return true;
    if (!event.applicationId) return false;
    return owned.get(event.applicationId) ?? lookUp(event.applicationId);
  };
}
