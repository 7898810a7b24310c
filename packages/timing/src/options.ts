/**
 * Options of `timing()`, resolved once into a fully-required config (ARCHITECTURE.md rule 2)
 * and validated at construction (rule 3).
 */
import {
  checkOptionsObject,
  consoleLogger,
  createRegistry,
  optionRangeError,
  optionTypeError,
  type PerfstackLogger,
  type ProcessStats,
  parseDuration,
  Registry,
  readBoolean,
  readFunction,
  readInteger,
  type SharedContext,
} from '@perfstack/core';
import { type AlertsOptions, type CompiledRule, compileAlerts } from './alerts/rules.js';
import { DEFAULT_DURATION_BUCKETS } from './metrics.js';

const PKG = '@perfstack/timing';

/** A source of time in milliseconds. Durations and windows both read it. */
export interface Clock {
  now(): number;
}

/** The default clock: `performance.now()` on the epoch scale (monotonic, sub-millisecond). */
const TIME_ORIGIN = performance.timeOrigin;
export const systemClock: Clock = {
  now: () => TIME_ORIGIN + performance.now(),
};

/** Options of {@link timing}. Every option is optional. */
export interface TimingOptions extends SharedContext {
  /** Add `Server-Timing: total;dur=<ms>` (joined with other layers' entries). @default true */
  readonly serverTiming?: boolean;
  /** Add `X-Response-Time: <ms>ms`; a string names another header. @default false */
  readonly responseTimeHeader?: boolean | string;
  /** Record Prometheus metrics in `registry`. @default true */
  readonly metrics?: boolean;
  /** Also start prom-client's default process metrics on the registry (once per registry). @default true */
  readonly defaultMetrics?: boolean;
  /** Prefix of every metric name, default process metrics included. @default '' */
  readonly prefix?: string;
  /** Buckets of `http_request_duration_seconds`, seconds, ascending. @default prom-client's 0.005 ... 10 */
  readonly buckets?: readonly number[];
  /** Distinct route label values kept; further patterns share the label `other`. @default 100 */
  readonly maxRoutes?: number;
  /** Alert rules, or `false` for none. @default the five default rules */
  readonly alerts?: false | AlertsOptions;
  /** How often process figures are sampled and alert rules evaluated (ms or `'1s'`). @default 1000 */
  readonly sampleInterval?: number | string;
  /** Path prefixes left out of the rolling windows, route table and alerts (still in Prometheus). @default [] */
  readonly exclude?: readonly string[];
  /** Time source for durations and windows (tests). @default performance.now() on the epoch scale */
  readonly clock?: Clock;
  /** Replaces the built-in process sampler (tests, cgroup-aware figures). */
  readonly sampleProcess?: () => ProcessStats;
}

/** The resolved configuration. */
export interface TimingConfig {
  readonly serverTiming: boolean;
  readonly responseTimeHeader: string | undefined;
  readonly metrics: boolean;
  readonly defaultMetrics: boolean;
  readonly prefix: string;
  readonly buckets: readonly number[];
  readonly maxRoutes: number;
  readonly rules: readonly CompiledRule[];
  readonly sampleInterval: number;
  readonly exclude: readonly string[];
  readonly clock: Clock;
  readonly sampleProcess: (() => ProcessStats) | undefined;
  readonly registry: Registry;
  readonly logger: PerfstackLogger;
}

/** Every accepted option key (the `SharedContext` members included). */
export const OPTION_KEYS = [
  'serverTiming',
  'responseTimeHeader',
  'metrics',
  'defaultMetrics',
  'prefix',
  'buckets',
  'maxRoutes',
  'alerts',
  'sampleInterval',
  'exclude',
  'clock',
  'sampleProcess',
  'registry',
  'redis',
  'logger',
] as const;

const TOKEN_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const METRIC_PREFIX_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

function readHeaderName(value: unknown): string | undefined {
  if (value === undefined || value === false) return undefined;
  if (value === true) return 'X-Response-Time';
  if (typeof value !== 'string' || !TOKEN_RE.test(value)) {
    throw optionTypeError(PKG, 'responseTimeHeader', value, 'a boolean or a header name');
  }
  return value;
}

function readPrefix(value: unknown): string {
  if (value === undefined || value === '') return '';
  if (typeof value !== 'string' || !METRIC_PREFIX_RE.test(value)) {
    throw optionTypeError(PKG, 'prefix', value, 'a Prometheus name prefix such as "myapp_" ([a-zA-Z_:][a-zA-Z0-9_:]*)');
  }
  return value;
}

function readBuckets(value: unknown): readonly number[] {
  if (value === undefined) return DEFAULT_DURATION_BUCKETS;
  const accepted = 'a non-empty array of ascending positive numbers (seconds)';
  if (!Array.isArray(value) || value.length === 0) throw optionTypeError(PKG, 'buckets', value, accepted);
  let previous = 0;
  for (const bound of value) {
    if (typeof bound !== 'number' || !Number.isFinite(bound)) throw optionTypeError(PKG, 'buckets', value, accepted);
    if (bound <= previous) throw optionRangeError(PKG, 'buckets', value, accepted);
    previous = bound;
  }
  return Object.freeze([...value]);
}

function readExclude(value: unknown): readonly string[] {
  if (value === undefined) return [];
  const accepted = 'an array of path prefixes starting with "/"';
  if (!Array.isArray(value)) throw optionTypeError(PKG, 'exclude', value, accepted);
  for (const path of value) {
    if (typeof path !== 'string' || !path.startsWith('/')) throw optionTypeError(PKG, 'exclude', value, accepted);
  }
  // '/dashboard/' and '/dashboard' mean the same prefix; '/' alone would exclude everything on purpose.
  return Object.freeze(value.map((path: string) => (path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path)));
}

function readRegistry(value: unknown): Registry {
  if (value === undefined) return createRegistry();
  if (
    value instanceof Registry ||
    (typeof value === 'object' &&
      value !== null &&
      typeof (value as Registry).metrics === 'function' &&
      typeof (value as Registry).registerMetric === 'function' &&
      typeof (value as Registry).getSingleMetric === 'function')
  ) {
    return value as Registry;
  }
  throw optionTypeError(PKG, 'registry', value, 'a prom-client Registry');
}

function readLogger(value: unknown): PerfstackLogger {
  if (value === undefined) return consoleLogger;
  const logger = value as PerfstackLogger;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof logger.warn !== 'function' ||
    typeof logger.error !== 'function'
  ) {
    throw optionTypeError(PKG, 'logger', value, 'an object with warn() and error() methods');
  }
  return logger;
}

function readClock(value: unknown): Clock {
  if (value === undefined) return systemClock;
  if (typeof value !== 'object' || value === null || typeof (value as Clock).now !== 'function') {
    throw optionTypeError(PKG, 'clock', value, 'an object with a now() method returning milliseconds');
  }
  return value as Clock;
}

/**
 * Validates `options` and resolves every default.
 *
 * @throws {TypeError} on an unknown key or a value of the wrong type
 * @throws {RangeError} on a value out of range
 */
export function resolveTimingConfig(options: TimingOptions | undefined): TimingConfig {
  const given = checkOptionsObject(PKG, 'timing', options, OPTION_KEYS) as Partial<TimingOptions>;
  return {
    serverTiming: readBoolean(PKG, 'serverTiming', given.serverTiming, true),
    responseTimeHeader: readHeaderName(given.responseTimeHeader),
    metrics: readBoolean(PKG, 'metrics', given.metrics, true),
    defaultMetrics: readBoolean(PKG, 'defaultMetrics', given.defaultMetrics, true),
    prefix: readPrefix(given.prefix),
    buckets: readBuckets(given.buckets),
    maxRoutes: readInteger(PKG, 'maxRoutes', given.maxRoutes, 100, 1, 10_000),
    rules: compileAlerts(given.alerts),
    sampleInterval: parseDuration(given.sampleInterval ?? 1000, 'sampleInterval', {
      pkg: PKG,
      min: 100,
      max: 3_600_000,
    }),
    exclude: readExclude(given.exclude),
    clock: readClock(given.clock),
    sampleProcess: readFunction<() => ProcessStats>(PKG, 'sampleProcess', given.sampleProcess),
    registry: readRegistry(given.registry),
    logger: readLogger(given.logger),
  };
}
