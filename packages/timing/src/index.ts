/**
 * @perfstack/timing — the outermost perfstack layer: high-resolution time per request
 * (cache hits included), `Server-Timing` and `X-Response-Time`, Prometheus metrics by route
 * pattern on prom-client, rolling 1/5/15-minute windows with p50/p95/p99 in bounded memory,
 * a per-route table, and alert rules with plain-words recommendations.
 */
export type { ResolvedAlert } from './alerts/engine.js';
export {
  type AlertRule,
  type AlertSeverity,
  type AlertsOptions,
  DEFAULT_RULE_NAMES,
  type DefaultRuleOptions,
  type Recommendation,
} from './alerts/rules.js';
export { appTiming, markApp } from './app-timing.js';
export type { TimingEventName, TimingEvents } from './events.js';
export { BUCKET_COUNT, LatencyHistogram, RELATIVE_PRECISION } from './histogram.js';
export { ANY_METHOD, OTHER_ROUTE } from './labels.js';
export { DEFAULT_DURATION_BUCKETS, METRIC_NAMES, SIZE_BUCKETS } from './metrics.js';
export { type Clock, systemClock, type TimingOptions } from './options.js';
export type { DetailedTimingSnapshot } from './snapshot.js';
export { type Timing, timing } from './timing.js';
export {
  ROUTE_SLOT_COUNT,
  ROUTE_SLOT_MS,
  SLOT_COUNT,
  SLOT_MS,
  type TimingRouteStats,
} from './windows.js';
