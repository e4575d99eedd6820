import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The service's Prometheus metrics (GET /metrics). One registry per app, never global. */
export function createMetrics() {
  const registry = new Registry();
  /** Read at scrape time; the owners of the numbers set them. */
  const probes = {
    subscribers: () => 0,
    validationCacheEntries: () => 0,
    /** GET /validate answers by path and status, counted by the route itself. */
    gatewayChecks: (): Readonly<Record<string, ReadonlyMap<number, number>>> => ({}),
  };
  return {
    registry,
    probes,
    events: new Counter({
      name: "token_manager_events_total",
      help: "Committed token events seen by this instance, by type.",
      labelNames: ["type"] as const,
      registers: [registry],
    }),
    subscribers: new Gauge({
      name: "token_manager_event_subscribers",
      help: "Live tokenEvents subscriptions on this instance.",
      registers: [registry],
      collect() {
        this.set(probes.subscribers());
      },
    }),
    deliveryLag: new Histogram({
      name: "token_manager_event_delivery_lag_seconds",
      help: "From an event's commit to its delivery to a live subscriber.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    slowConsumers: new Counter({
      name: "token_manager_slow_consumers_total",
      help: "Subscribers disconnected as too slow: their socket held more than EVENT_SEND_BUFFER_LIMIT unsent bytes for EVENT_SLOW_CONSUMER_GRACE_MS (or 8 times as many at once), or EVENT_QUEUE_LIMIT events waited for them.",
      registers: [registry],
    }),
    sweeperLag: new Gauge({
      name: "token_manager_sweeper_lag_seconds",
      help: "How far behind expiry the latest EXPIRED announcement was.",
      registers: [registry],
    }),
    swept: new Counter({
      name: "token_manager_sweeper_rows_total",
      help: "Rows the sweeper handled, by job (expired, expiring_soon, grace_ended, purged).",
      labelNames: ["job"] as const,
      registers: [registry],
    }),
    gatewayChecks: new Counter({
      name: "token_manager_gateway_checks_total",
      help: "GET /validate answers by status, and whether the cache answered without I/O (cached) or the check had to read (lookup).",
      labelNames: ["status", "path"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [path, byStatus] of Object.entries(probes.gatewayChecks())) {
          for (const [status, value] of byStatus) this.inc({ status: String(status), path }, value);
        }
      },
    }),
    validationCacheEntries: new Gauge({
      name: "token_manager_validation_cache_entries",
      help: "Tokens in this instance's validation cache.",
      registers: [registry],
      collect() {
        this.set(probes.validationCacheEntries());
      },
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
