import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Database } from "../db/client.js";
import type { TokenEventReason, TokenEventType } from "../db/schema/index.js";
import { TOKEN_EVENTS_CHANNEL } from "../domain/token-event.js";

/** A committed token event as announced on the channel (the token_events row, as JSON). */
export interface TokenEventNotice {
  readonly id: number;
  readonly type: TokenEventType;
  readonly reason: TokenEventReason | null;
  readonly occurred_at: string;
  readonly token_id: string | null;
  readonly token_kind: "APPLICATION" | "USER" | null;
  readonly key_type: "PRODUCTION" | "SANDBOX" | null;
  readonly application_id: string | null;
  readonly user_id: string | null;
  readonly scopes: string[] | null;
  readonly expires_at: string | null;
  /** Too large for NOTIFY: only `id` is set; read the row. */
  readonly truncated?: true;
}

/**
 * A committed change that is not a token event but that caches must hear of: an owner disabled
 * (its clients), an application's subscriptions changed (its tokens' grants).
 */
export interface CacheNotice {
  readonly invalidate: { readonly ownerId: string } | { readonly applicationId: string };
}

export interface EventBus {
  /** Every committed event, on every instance, in the order the channel delivers them. */
  subscribe(listener: (event: TokenEventNotice) => void): () => void;
  /** Committed cache notices (see `announceCacheNotice`). */
  onCacheNotice(listener: (notice: CacheNotice) => void): () => void;
  /**
   * `false` when events may have been missed (the listening connection was lost or went silent),
   * `true` once listening again. Caches must not trust what they hold in between.
   */
  onConnectivity(listener: (connected: boolean) => void): () => void;
  /**
   * Whether a cache may trust what it holds now: listening, and (on PostgreSQL) a heartbeat sent
   * within the last two beats was heard back (see TRUST_BEATS). It can read false for a moment
   * without an interruption (a late beat); onConnectivity only reports interruptions.
   */
  readonly connected: boolean;
  /**
   * Resolves once every event committed before the call has reached this instance's listeners:
   * a ping sent now comes back after them, since notifications arrive in commit order. Changes
   * that must hold on the very next request (revocations) await it before answering. A ping that
   * does not come back counts as an interruption.
   */
  sync(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

interface Heartbeat {
  readonly hb: string;
  /** When the beat was sent (the sender's performance.now(): only the sender reads it). */
  readonly at: number;
  readonly sync?: number;
}

/**
 * How many heartbeat intervals a cache may go on trusting what it holds after the last beat it
 * heard was sent. A beat heard proves every event committed before it was sent has arrived (one
 * connection delivers in commit order); past this, a revocation may be waiting in a stream that
 * went silent, so `connected` reads false (caches bypass, without a flush: nothing is known lost)
 * until a beat is heard again, or until three silent beats declare the stream interrupted.
 */
const TRUST_BEATS = 2;

const SYNC_TIMEOUT_MS = 2000;

/**
 * The event bus over LISTEN/NOTIFY: in-process on PGlite, across instances on PostgreSQL.
 * On PostgreSQL each instance also NOTIFYs a heartbeat every `heartbeatMs` and expects to hear it
 * back; silence for three beats, or a reconnection, means events may have been lost.
 */
export function createEventBus(database: Database, log: Logger, heartbeatMs: number): EventBus {
  const listeners = new Set<(event: TokenEventNotice) => void>();
  const connectivity = new Set<(connected: boolean) => void>();
  const cacheListeners = new Set<(notice: CacheNotice) => void>();
  const instance = randomUUID();
  let connected = false;
  let listens = 0;
  /** When the last beat heard was sent (performance.now(): a wall-clock step does not move it). */
  let lastBeat = performance.now();
  let timer: NodeJS.Timeout | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let syncs = 0;
  const waiting = new Map<number, () => void>();

  const setConnected = (value: boolean) => {
    if (connected === value) return;
    connected = value;
    log[value ? "info" : "warn"](
      { connected: value },
      value ? "event stream connected" : "event stream interrupted",
    );
    for (const listener of connectivity) listener(value);
  };

  const onNotify = (payload: string) => {
    let message: TokenEventNotice | Heartbeat | CacheNotice;
    try {
      message = JSON.parse(payload) as TokenEventNotice | Heartbeat | CacheNotice;
    } catch {
      return;
    }
    if ("invalidate" in message) {
      for (const listener of cacheListeners) listener(message);
      return;
    }
    if ("hb" in message) {
      if (message.hb === instance) {
        lastBeat = Math.max(lastBeat, message.at);
        setConnected(true);
        if (message.sync !== undefined) {
          waiting.get(message.sync)?.();
          waiting.delete(message.sync);
        }
      }
      return;
    }
    for (const listener of listeners) {
      try {
        listener(message);
      } catch (error) {
        log.error({ err: error }, "token event listener failed");
      }
    }
  };

  const onListen = () => {
    listens += 1;
    // A second LISTEN means the connection was re-established: anything in between is lost.
    if (listens > 1) setConnected(false);
    lastBeat = performance.now();
    setConnected(true);
  };

  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onCacheNotice(listener) {
      cacheListeners.add(listener);
      return () => cacheListeners.delete(listener);
    },
    onConnectivity(listener) {
      connectivity.add(listener);
      return () => connectivity.delete(listener);
    },
    get connected() {
      return connected && (timer === undefined || performance.now() - lastBeat <= TRUST_BEATS * heartbeatMs);
    },
    async sync() {
      const id = ++syncs;
      const heard = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          resolve(false);
        }, SYNC_TIMEOUT_MS);
        timer.unref();
        waiting.set(id, () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      try {
        await database.notify(
          TOKEN_EVENTS_CHANNEL,
          JSON.stringify({ hb: instance, at: performance.now(), sync: id }),
        );
      } catch {
        waiting.delete(id);
        setConnected(false);
        return;
      }
      if (!(await heard)) setConnected(false);
    },
    async start() {
      unlisten = await database.listen(TOKEN_EVENTS_CHANNEL, onNotify, onListen);
      if (database.driver !== "postgres") return;
      timer = setInterval(() => {
        if (performance.now() - lastBeat > 3 * heartbeatMs) setConnected(false);
        database
          .notify(TOKEN_EVENTS_CHANNEL, JSON.stringify({ hb: instance, at: performance.now() }))
          .catch(() => setConnected(false));
      }, heartbeatMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      // Stopping is not an interruption: no warning, and listeners keep their state.
      connectivity.clear();
      await unlisten?.().catch(() => undefined);
      connected = false;
    },
  };
}
