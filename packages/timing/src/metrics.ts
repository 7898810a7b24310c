/**
 * The Prometheus side of timing, on prom-client: request duration, count, in-flight and
 * sizes, labelled by (method, route pattern, status code), plus prom-client's default
 * process metrics (CPU, memory, handles, GC, event-loop lag), registered once per registry.
 *
 * Metrics are got-or-created on the shared registry (`@perfstack/core`'s helpers), so two
 * timing instances on one registry share them instead of colliding.
 */
import { type Counter, counter, type Gauge, gauge, type Histogram, histogram, type Registry } from '@perfstack/core';
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

/** Settings of {@link HttpMetrics}. */
export interface HttpMetricsConfig {
  readonly registry: Registry;
  readonly prefix: string;
  readonly buckets: readonly number[];
  readonly defaultMetrics: boolean;
}

/** The HTTP metrics of one registry. */
export class HttpMetrics {
  readonly duration: Histogram<LabelName>;
  readonly requests: Counter<LabelName>;
  readonly inFlight: Gauge<string>;
  readonly requestSize: Histogram<LabelName>;
  readonly responseSize: Histogram<LabelName>;

  constructor(config: HttpMetricsConfig) {
    const { registry, prefix } = config;
    this.duration = histogram(registry, {
      name: prefix + METRIC_NAMES.duration,
      help: 'Duration of HTTP requests in seconds, from arrival to the end of the response, by route pattern',
      labelNames: LABEL_NAMES,
      buckets: config.buckets,
    });
    this.requests = counter(registry, {
      name: prefix + METRIC_NAMES.requests,
      help: 'HTTP requests answered, by route pattern',
      labelNames: LABEL_NAMES,
    });
    this.inFlight = gauge(registry, {
      name: prefix + METRIC_NAMES.inFlight,
      help: 'HTTP requests being processed',
    });
    this.requestSize = histogram(registry, {
      name: prefix + METRIC_NAMES.requestSize,
      help: 'Size of HTTP request bodies in bytes (from Content-Length), by route pattern',
      labelNames: LABEL_NAMES,
      buckets: SIZE_BUCKETS,
    });
    this.responseSize = histogram(registry, {
      name: prefix + METRIC_NAMES.responseSize,
      help: 'Size of HTTP response bodies in bytes (from Content-Length), by route pattern',
      labelNames: LABEL_NAMES,
      buckets: SIZE_BUCKETS,
    });
    for (const metric of [this.duration, this.requests, this.requestSize, this.responseSize]) {
      checkLabels(metric as unknown as { labelNames?: readonly string[]; name?: string }, LABEL_NAMES);
    }
    checkLabels(this.inFlight as unknown as { labelNames?: readonly string[]; name?: string }, []);
    if (config.defaultMetrics) ensureDefaultMetrics(registry, prefix);
  }

  /**
   * Records one finished request.
   *
   * @param requestBytes request body size, or -1 when unknown
   * @param responseBytes response body size, or -1 when unknown
   */
  observe(kind: RequestKind, seconds: number, requestBytes: number, responseBytes: number): void {
    const labels: KindLabels = kind.labels;
    this.duration.observe(labels, seconds);
    this.requests.inc(labels);
    if (requestBytes >= 0) this.requestSize.observe(labels, requestBytes);
    if (responseBytes >= 0) this.responseSize.observe(labels, responseBytes);
  }
}
