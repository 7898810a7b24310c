/**
 * Prometheus metrics of the outbound clients on a registry (get-or-create, so clients on
 * the preset's shared registry share the series, told apart by the `client` label). The
 * breaker state of each origin is on the package's `perfstack_circuit_breaker_state`
 * gauge, as breaker `client:<name>@<origin>`.
 */
import { type Counter, counter, gauge, type Histogram, histogram, type Registry } from '@perfstack/core';

/** What the origin gauge reads at scrape time. */
export interface OriginView {
  readonly client: string;
  readonly label: string;
  readonly healthy: boolean;
  readonly pending: number;
}

const sources = new WeakMap<Registry, Set<() => Iterable<OriginView>>>();
/** Per registry, what folds the clients' plain-number tallies into the counters before a scrape. */
const flushers = new WeakMap<Registry, Set<() => void>>();

export interface ClientMetrics {
  /** Calls (`request()`), whatever their attempts. */
  readonly calls: Counter<'client'>;
  /** Attempts per origin, by status code (`error`, `timeout` when no response). */
  readonly requests: Counter<'client' | 'origin' | 'status'>;
  /** Time to the response head of each attempt. */
  readonly latency: Histogram<'client' | 'origin'>;
  readonly retries: Counter<'client'>;
  readonly budgetExhausted: Counter<'client'>;
  readonly hedges: Counter<'client'>;
  detach(): void;
}

/**
 * The calls and attempts counters are the two hottest metrics (every call): a prom-client
 * `inc()` hashes and validates its labels each time, so the client counts in plain numbers
 * and `flush` adds them to the counters right before each scrape (their `collect`).
 */
export function clientMetrics(
  registry: Registry,
  origins: () => Iterable<OriginView>,
  flush: () => void,
): ClientMetrics {
  let flushing = flushers.get(registry);
  if (flushing === undefined) {
    flushing = new Set();
    flushers.set(registry, flushing);
  }
  const flushSet = flushing;
  flushSet.add(flush);
  const flushAll = () => {
    for (const f of flushSet) f();
  };
  let set = sources.get(registry);
  if (set === undefined) {
    const created = new Set<() => Iterable<OriginView>>();
    set = created;
    sources.set(registry, created);
    gauge(registry, {
      name: 'perfstack_client_origin_healthy',
      help: 'Outbound client origins: 1 when the origin takes calls (healthy), 0 when it is out',
      labelNames: ['client', 'origin'],
      collect() {
        this.reset();
        for (const source of created)
          for (const o of source()) this.set({ client: o.client, origin: o.label }, o.healthy ? 1 : 0);
      },
    });
    gauge(registry, {
      name: 'perfstack_client_origin_pending',
      help: 'Outbound client attempts in flight per origin',
      labelNames: ['client', 'origin'],
      collect() {
        this.reset();
        for (const source of created)
          for (const o of source()) this.set({ client: o.client, origin: o.label }, o.pending);
      },
    });
  }
  set.add(origins);
  const owner = set;
  return {
    calls: counter(registry, {
      name: 'perfstack_client_calls_total',
      help: 'Outbound client calls (each may make several attempts)',
      labelNames: ['client'],
      collect: flushAll,
    }),
    requests: counter(registry, {
      name: 'perfstack_client_requests_total',
      help: 'Outbound client attempts per origin, by response status ("error" or "timeout" without a response)',
      labelNames: ['client', 'origin', 'status'],
      collect: flushAll,
    }),
    latency: histogram(registry, {
      name: 'perfstack_client_request_duration_seconds',
      help: 'Outbound client attempt latency to the response head, per origin',
      labelNames: ['client', 'origin'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    }),
    retries: counter(registry, {
      name: 'perfstack_client_retries_total',
      help: 'Outbound client retries (the retry rate is retries / calls)',
      labelNames: ['client'],
    }),
    budgetExhausted: counter(registry, {
      name: 'perfstack_client_retry_budget_exhausted_total',
      help: 'Outbound client retries not made because the retry budget was spent',
      labelNames: ['client'],
    }),
    hedges: counter(registry, {
      name: 'perfstack_client_hedges_total',
      help: 'Outbound client hedged attempts',
      labelNames: ['client'],
    }),
    detach() {
      flushAll();
      flushSet.delete(flush);
      owner.delete(origins);
    },
  };
}
