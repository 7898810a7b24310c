/**
 * Prometheus metrics of the outbound clients on a registry (get-or-create, so clients on
 * the preset's shared registry share the series, told apart by the `client` label). The
 * breaker state of each origin is on the package's `perfstack_circuit_breaker_state`
 * gauge, as breaker `client:<name>@<origin>`.
 */
import { type Counter, counter, gauge, type Histogram, type Registry } from '@perfstack/core';

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
  /** Time to the response head of each attempt: the series of one origin. */
  latency(client: string, origin: string): LatencySeries;
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
    latency: (client, origin) => latencyMetric(registry).series(client, origin),
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

/** prom-client's default buckets (seconds), as the latency histogram had them. */
const LATENCY_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const LATENCY_NAME = 'perfstack_client_request_duration_seconds';

/**
 * One (client, origin) series of the latency histogram, counted in place: a prom-client
 * `observe` (even on a labelled child) validates and hashes the labels and converts the
 * bound to a string key on every call, which measured as a large share of what the client
 * adds to an undici call. The registry reads the series at scrape time.
 */
export class LatencySeries {
  /** Per bucket, not cumulative. */
  readonly buckets = new Float64Array(LATENCY_BUCKETS.length);
  count = 0;
  sum = 0;

  constructor(readonly labels: { readonly client: string; readonly origin: string }) {}

  observe(seconds: number): void {
    // prom-client's rule: a value falls in the first bucket whose bound it does not exceed.
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[i] as number)) i++;
    if (i < LATENCY_BUCKETS.length) (this.buckets[i] as number)++;
    this.count++;
    this.sum += seconds;
  }
}

interface Sample {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  readonly metricName: string;
}

/**
 * The latency histogram on a registry: what a prom-client `Registry` uses of a metric
 * (`name`, `help`, `type`, `aggregator`, `labelNames`, `get()`, `reset()`), with the same
 * exposition as a prom-client histogram (`_bucket` cumulative with `le`, `_sum`, `_count`).
 * Series outlive their client, as prom-client's label sets do.
 */
class LatencyMetric {
  readonly name = LATENCY_NAME;
  readonly help = 'Outbound client attempt latency to the response head, per origin';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames = ['client', 'origin'];
  #series = new Map<string, LatencySeries>();

  /** The series of (client, origin), made on first use; shared by clients of one name. */
  series(client: string, origin: string): LatencySeries {
    const key = `${client}\u0000${origin}`;
    let series = this.#series.get(key);
    if (series === undefined) {
      series = new LatencySeries({ client, origin });
      this.#series.set(key, series);
    }
    return series;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const series of this.#series.values()) {
      const { client, origin } = series.labels;
      let cumulative = 0;
      for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
        cumulative += series.buckets[i] as number;
        values.push({
          value: cumulative,
          labels: { le: LATENCY_BUCKETS[i] as number, client, origin },
          metricName: `${LATENCY_NAME}_bucket`,
        });
      }
      values.push({
        value: series.count,
        labels: { le: '+Inf', client, origin },
        metricName: `${LATENCY_NAME}_bucket`,
      });
      values.push({ value: series.sum, labels: { client, origin }, metricName: `${LATENCY_NAME}_sum` });
      values.push({ value: series.count, labels: { client, origin }, metricName: `${LATENCY_NAME}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** What prom-client's `resetMetrics()` does to a histogram: every series back to zero. */
  reset(): void {
    for (const series of this.#series.values()) {
      series.buckets.fill(0);
      series.count = 0;
      series.sum = 0;
    }
  }
}

/** The latency histogram of `registry`, registered on first use. */
function latencyMetric(registry: Registry): LatencyMetric {
  const existing = registry.getSingleMetric(LATENCY_NAME) as unknown;
  if (existing instanceof LatencyMetric) return existing;
  if (existing !== undefined) {
    throw new TypeError(
      `@perfstack/circuit-breaker: the registry already has a metric "${LATENCY_NAME}" that is not the client's; pass another "registry"`,
    );
  }
  const metric = new LatencyMetric();
  registry.registerMetric(metric as unknown as Histogram);
  return metric;
}
