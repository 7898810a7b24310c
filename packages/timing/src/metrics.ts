/**
 * The Prometheus side of timing: request duration, count, in-flight and sizes, labelled by
 * (method, route pattern, status code), plus prom-client's default process metrics (CPU,
 * memory, handles, GC, event-loop lag), registered once per registry.
 *
 * The request path never calls prom-client: prom-client 15 rebuilds a label-hash string
 * (and allocates a closure) on every `observe`/`inc`, which cost more than all of timing's
 * other per-request work. Instead each (method, route, status) series is a small record of
 * bucket counters, reached through the interned request kind, and the registry reads the
 * records at scrape time through metric objects that implement prom-client's `get()`
 * contract (the same `values` a prom-client `Histogram`/`Counter`/`Gauge` returns), so the
 * exposition text is the same: names, labels, `le` bounds, cumulative `_bucket`s, `_sum`,
 * `_count`.
 *
 * The records live in one store per (registry, prefix), found through the metric objects on
 * the registry, so two timing instances on one registry share their series as they did
 * with get-or-created prom-client metrics. A metric of the same name that someone else put
 * on the registry (a prom-client one with the same labels) is fed through prom-client.
 */
import type { Counter, Gauge, Histogram, Registry } from '@perfstack/core';
import { collectDefaultMetrics } from 'prom-client';
import type { KindLabels, RequestKind } from './labels.js';

/** prom-client's default buckets (seconds): 5 ms to 10 s. */
export const DEFAULT_DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Size buckets (bytes): 100 B to 10 MB. */
export const SIZE_BUCKETS: readonly number[] = [100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

const LABEL_NAMES = ['method', 'route', 'status_code'] as const;
type LabelName = (typeof LABEL_NAMES)[number];

/** Metric names (before the prefix), as the README lists them. */
export const METRIC_NAMES = {
  duration: 'http_request_duration_seconds',
  requests: 'http_requests_total',
  inFlight: 'http_requests_in_flight',
  requestSize: 'http_request_size_bytes',
  responseSize: 'http_response_size_bytes',
} as const;

const HELP = {
  duration: 'Duration of HTTP requests in seconds, from arrival to the end of the response, by route pattern',
  requests: 'HTTP requests answered, by route pattern',
  inFlight: 'HTTP requests being processed',
  requestSize: 'Size of HTTP request bodies in bytes (from Content-Length), by route pattern',
  responseSize: 'Size of HTTP response bodies in bytes (from Content-Length), by route pattern',
} as const;

/** Registries that already collect prom-client's default metrics (per prefix). */
const defaultMetricsDone = new WeakMap<Registry, Set<string>>();

/** Starts prom-client's default metrics on `registry` once, whoever asks first. */
function ensureDefaultMetrics(registry: Registry, prefix: string): void {
  let prefixes = defaultMetricsDone.get(registry);
  if (prefixes === undefined) {
    prefixes = new Set();
    defaultMetricsDone.set(registry, prefixes);
  }
  if (prefixes.has(prefix)) return;
  prefixes.add(prefix);
  // Someone (the app, another copy of this package) may have started them already.
  if (registry.getSingleMetric(`${prefix}process_cpu_user_seconds_total`) !== undefined) return;
  collectDefaultMetrics({ register: registry, prefix });
}

/** Throws when a metric of ours exists on the registry with other labels (it would throw on every request). */
function checkLabels(metric: { labelNames?: readonly string[]; name?: string }, expected: readonly string[]): void {
  const actual = metric.labelNames ?? [];
  if (actual.length !== expected.length || expected.some((name) => !actual.includes(name))) {
    throw new TypeError(
      `@perfstack/timing: the registry already has a metric "${String(metric.name)}" with labels [${actual.join(', ')}], ` +
        `timing needs [${expected.join(', ')}]; pass another "prefix" or another "registry"`,
    );
  }
}

/** The index of the first bound `value` fits under (prom-client's rule: `value <= bound`), or -1 (only `+Inf`). */
function bucketOf(bounds: readonly number[], value: number): number {
  for (let i = 0; i < bounds.length; i++) if (value <= (bounds[i] as number)) return i;
  return -1;
}

/** One bucketed distribution: per-bucket (not cumulative) counts, sum and count. */
class Distribution {
  readonly buckets: Float64Array;
  count = 0;
  sum = 0;

  constructor(readonly bounds: readonly number[]) {
    this.buckets = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    const i = bucketOf(this.bounds, value);
    if (i >= 0) (this.buckets[i] as number)++;
    this.count++;
    this.sum += value;
  }
}

/** The figures of one (method, route, status) series. */
export class HttpSeries {
  /** Set when the store was reset: the next observation looks the series up again. */
  retired = false;
  readonly duration: Distribution;
  readonly requestSize = new Distribution(SIZE_BUCKETS);
  readonly responseSize = new Distribution(SIZE_BUCKETS);

  constructor(
    readonly labels: KindLabels,
    durationBounds: readonly number[],
  ) {
    this.duration = new Distribution(durationBounds);
  }
}

/** The series of one (registry, prefix), shared by every timing instance on it. */
class HttpSeriesStore {
  /** Requests arrived and not yet ended. */
  inFlight = 0;
  #all: HttpSeries[] = [];
  #index = new Map<string, Map<string, Map<string, HttpSeries>>>();

  constructor(readonly durationBounds: readonly number[]) {}

  /** The series of `labels`, created on first use (three map lookups; once per kind in practice). */
  series(labels: KindLabels): HttpSeries {
    let byRoute = this.#index.get(labels.method);
    if (byRoute === undefined) {
      byRoute = new Map();
      this.#index.set(labels.method, byRoute);
    }
    let byStatus = byRoute.get(labels.route);
    if (byStatus === undefined) {
      byStatus = new Map();
      byRoute.set(labels.route, byStatus);
    }
    let series = byStatus.get(labels.status_code);
    if (series === undefined) {
      series = new HttpSeries(labels, this.durationBounds);
      byStatus.set(labels.status_code, series);
      this.#all.push(series);
    }
    return series;
  }

  /** Every series, in order of creation. */
  all(): readonly HttpSeries[] {
    return this.#all;
  }

  /** Forgets every series (what prom-client's `reset()` does); the in-flight count is live and stays. */
  reset(): void {
    for (const series of this.#all) series.retired = true;
    this.#all = [];
    this.#index = new Map();
  }
}

/** One sample as prom-client's `get()` returns it. */
interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  /** Labels the text exposition puts after `labels` (prom-client histograms use them for the series labels). */
  sharedLabels?: KindLabels;
  metricName?: string;
}

/** What prom-client's `get()` returns. */
interface MetricData {
  name: string;
  help: string;
  type: 'histogram' | 'counter' | 'gauge';
  values: MetricValue[];
  aggregator: 'sum';
}

type Facet = 'duration' | 'requests' | 'inFlight' | 'requestSize' | 'responseSize';

/**
 * A metric on the registry that reads a {@link HttpSeriesStore} at scrape time. It has what
 * a prom-client `Registry` uses (`name`, `help`, `type`, `aggregator`, `labelNames`,
 * `get()`, `reset()`), so `registry.metrics()`, `getMetricsAsJSON()` and `resetMetrics()`
 * treat it like a prom-client metric.
 */
class StoreMetric {
  readonly aggregator = 'sum';
  readonly type: MetricData['type'];
  readonly labelNames: readonly string[];

  constructor(
    readonly name: string,
    readonly help: string,
    readonly store: HttpSeriesStore,
    readonly facet: Facet,
  ) {
    this.type = facet === 'requests' ? 'counter' : facet === 'inFlight' ? 'gauge' : 'histogram';
    this.labelNames = facet === 'inFlight' ? [] : LABEL_NAMES;
  }

  /** What prom-client's `get()` returns: every sample with its full labels (`le` first). */
  async get(): Promise<MetricData> {
    return this.#data(false);
  }

  /**
   * What the registry's text exposition reads (as prom-client's own histograms give it):
   * bucket samples carry `le` in `labels` and the series labels in `sharedLabels`, so
   * default labels land in the same place in the text as with a prom-client histogram.
   */
  async getForPromString(): Promise<MetricData> {
    return this.#data(true);
  }

  #data(shared: boolean): MetricData {
    const values: MetricValue[] = [];
    const { facet, store } = this;
    if (facet === 'inFlight') {
      values.push({ value: store.inFlight, labels: {} });
    } else if (facet === 'requests') {
      for (const series of store.all()) values.push({ value: series.duration.count, labels: { ...series.labels } });
    } else {
      const bucketName = `${this.name}_bucket`;
      const sumName = `${this.name}_sum`;
      const countName = `${this.name}_count`;
      for (const series of store.all()) {
        const d = series[facet];
        if (d.count === 0) continue;
        const own = series.labels;
        const sample = (value: number, metricName: string, le?: number | string): MetricValue => {
          if (shared) return { value, labels: le === undefined ? {} : { le }, sharedLabels: own, metricName };
          const labels = le === undefined ? { ...own } : { le, ...own };
          return { value, labels, metricName };
        };
        let cumulative = 0;
        for (let i = 0; i < d.bounds.length; i++) {
          cumulative += d.buckets[i] as number;
          values.push(sample(cumulative, bucketName, d.bounds[i] as number));
        }
        values.push(sample(d.count, bucketName, '+Inf'));
        values.push(sample(d.sum, sumName));
        values.push(sample(d.count, countName));
      }
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    if (this.facet !== 'inFlight') this.store.reset();
  }
}

/** Settings of {@link HttpMetrics}. */
export interface HttpMetricsConfig {
  readonly registry: Registry;
  readonly prefix: string;
  readonly buckets: readonly number[];
  readonly defaultMetrics: boolean;
}

/** Metrics of those names that someone else registered with prom-client; fed through prom-client. */
interface ForeignMetrics {
  duration?: Histogram<LabelName>;
  requests?: Counter<LabelName>;
  inFlight?: Gauge<string>;
  requestSize?: Histogram<LabelName>;
  responseSize?: Histogram<LabelName>;
}

const FACETS: readonly Facet[] = ['duration', 'requests', 'inFlight', 'requestSize', 'responseSize'];

/** The HTTP metrics of one registry and prefix. */
export class HttpMetrics {
  readonly #store: HttpSeriesStore;
  readonly #foreign: ForeignMetrics | undefined;

  constructor(config: HttpMetricsConfig) {
    const { registry, prefix } = config;
    const existing = FACETS.map((facet) => registry.getSingleMetric(prefix + METRIC_NAMES[facet]) as unknown);
    for (let i = 0; i < FACETS.length; i++) {
      const metric = existing[i];
      if (metric !== undefined) {
        checkLabels(
          metric as { labelNames?: readonly string[]; name?: string },
          FACETS[i] === 'inFlight' ? [] : LABEL_NAMES,
        );
      }
    }
    const shared = existing.find((metric): metric is StoreMetric => metric instanceof StoreMetric);
    this.#store = shared?.store ?? new HttpSeriesStore([...config.buckets]);
    let foreign: ForeignMetrics | undefined;
    for (let i = 0; i < FACETS.length; i++) {
      const facet = FACETS[i] as Facet;
      const metric = existing[i];
      if (metric === undefined) {
        registry.registerMetric(
          new StoreMetric(prefix + METRIC_NAMES[facet], HELP[facet], this.#store, facet) as unknown as Histogram,
        );
      } else if (!(metric instanceof StoreMetric)) {
        foreign ??= {};
        (foreign as Record<Facet, unknown>)[facet] = metric;
      }
    }
    this.#foreign = foreign;
    if (config.defaultMetrics) ensureDefaultMetrics(registry, prefix);
  }

  /** A request arrived. */
  arrive(): void {
    this.#store.inFlight++;
    this.#foreign?.inFlight?.inc();
  }

  /** A request left (ended, or its client went away). */
  leave(): void {
    this.#store.inFlight--;
    this.#foreign?.inFlight?.dec();
  }

  /**
   * Records one finished request.
   *
   * @param requestBytes request body size, or -1 when unknown
   * @param responseBytes response body size, or -1 when unknown
   */
  observe(kind: RequestKind, seconds: number, requestBytes: number, responseBytes: number): void {
    let series = kind.httpSeries;
    if (series === undefined || series.retired) {
      series = this.#store.series(kind.labels);
      kind.httpSeries = series;
    }
    series.duration.observe(seconds);
    if (requestBytes >= 0) series.requestSize.observe(requestBytes);
    if (responseBytes >= 0) series.responseSize.observe(responseBytes);
    if (this.#foreign !== undefined) this.#observeForeign(kind.labels, seconds, requestBytes, responseBytes);
  }

  #observeForeign(labels: KindLabels, seconds: number, requestBytes: number, responseBytes: number): void {
    const foreign = this.#foreign as ForeignMetrics;
    foreign.duration?.observe(labels, seconds);
    foreign.requests?.inc(labels);
    if (requestBytes >= 0) foreign.requestSize?.observe(labels, requestBytes);
    if (responseBytes >= 0) foreign.responseSize?.observe(labels, responseBytes);
  }
}
