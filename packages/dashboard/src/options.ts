/**
 * The dashboard's options, resolved once into a fully-required config (ARCHITECTURE.md rule 2)
 * and validated at construction (rule 3).
 */

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  checkOptionsObject,
  consoleLogger,
  createRegistry,
  optionRangeError,
  optionTypeError,
  type PerfstackLogger,
  parseBytes,
  parseDuration,
  type Registry,
  readFunction,
  readInteger,
  readNumber,
  type SettingsSource,
  type SharedRedis,
} from '@perfstack/core';
import { type DashboardAuth, readAuth } from './access.js';
import type { HealthReport } from './health.js';
import { DEFAULT_HISTORY, type HistoryConfig } from './history.js';
import type { LeakSample, LeakWatchConfig } from './leak-watch.js';
import { type CpuProfile, type CpuRecording, recordCpuProfile } from './profile/cpu.js';
import type { ReportConfig } from './report.js';
import type { ReportFormat } from './report-format.js';
import type { DashboardSources, ResolvedSources } from './snapshot.js';

export const PKG = '@perfstack/dashboard';

/** Options for `dashboard()`. Every one is optional. */
export interface DashboardOptions {
  /** What the dashboard shows; each layer passes its data contract. @default {} */
  readonly sources?: DashboardSources;
  /**
   * Who may use the dashboard: `{ username, password }` (Basic), `{ token }` (Bearer), or
   * `(req) => boolean | Promise<boolean>`. @default loopback clients only (judged on the socket)
   */
  readonly auth?: DashboardAuth;
  /**
   * The full path the dashboard lives at, when the framework does not strip a mount path
   * (plain `node:http`, Koa without a mount): `'/dashboard'`. Requests outside it go to
   * `next()`. Leave unset under `app.use('/dashboard', ...)`. @default none
   */
  readonly basePath?: string;
  /**
   * Shared Redis connection: turns on the fleet view and, without `csrfSecret`, lets the
   * instances agree on one CSRF token (key `<keyPrefix>dashboard:csrf`).
   * @default none (this instance only)
   */
  readonly redis?: SharedRedis;
  /**
   * Where the fleet view is exchanged when there is no Redis: the `node:cluster` channel
   * (`perfstack/cluster` passes it in every worker). Takes precedence over `redis` for the
   * fleet view only. @default none
   */
  readonly fleetBus?: FleetBus;
  /**
   * Secret the CSRF token is derived from (HMAC-SHA256), at least 32 characters: every
   * instance given the same secret serves and accepts the same token, so a page served by
   * one instance works on another behind a load balancer, with or without Redis.
   * @default none (a random token per process, shared through `redis` when there is one)
   */
  readonly csrfSecret?: string;
  /** This instance's name in the fleet view. @default `<hostname>:<pid>:<random>` */
  readonly instanceId?: string;
  /**
   * The runtime settings behind `GET`/`PATCH /api/settings` and `POST /api/settings/undo`
   * (perfstack's `stack.settings`). @default none (those routes answer 404)
   */
  readonly settings?: SettingsSource;
  /** Time between snapshots on `/api/stream`. @default 1000 (ms) */
  readonly streamInterval?: number | string;
  /** Time between heartbeat comments on `/api/stream`. @default '15s' */
  readonly heartbeatInterval?: number | string;
  /** Most concurrent `/api/stream` clients; more get 503. @default 10 */
  readonly maxStreams?: number;
  /** Time between fleet publications. @default '2s' */
  readonly fleetInterval?: number | string;
  /** Time after which a silent instance leaves the fleet view. @default '10s' */
  readonly fleetTimeout?: number | string;
  /** Largest accepted action body. @default '16kb' */
  readonly bodyLimit?: number | string;
  /** The page's title. @default 'perfstack' */
  readonly title?: string;
  /** Metrics registry for the dashboard's own counters. @default a private registry */
  readonly registry?: Registry;
  /** Where serve-time problems go. @default console */
  readonly logger?: PerfstackLogger;
  /**
   * CPU profiles and heap snapshots/sampling on demand (`POST /api/profile/*`); `false` turns
   * the routes off (404). @default true
   */
  readonly profiling?: boolean | ProfilingOptions;
  /** Targets of the performance report (`GET /api/report`). @default see {@link ReportOptions} */
  readonly report?: ReportOptions;
  /** The leak watch's sampling and thresholds; `false` turns it off. @default true */
  readonly leakWatch?: boolean | LeakWatchOptions;
  /**
   * Writes the report on a schedule to a file and/or POSTs it to a webhook. Off unless given.
   * @default undefined (no schedule)
   */
  readonly reportSchedule?: ReportScheduleOptions;
  /**
   * The server-side history behind `GET /api/history` (charts start filled; with `redis`,
   * the fleet's last 24 hours survive a restart); `false` turns it off.
   * @default { fineStep: '10s', finePoints: 90, coarseStep: '5m', coarsePoints: 288 }
   */
  readonly history?: boolean | HistoryOptions;
}

/** `history` options. */
export interface HistoryOptions {
  /** Time between fine points. @default '10s' */
  readonly fineStep?: string | number;
  /** Fine points kept (1 – 10,000). @default 90 (15 minutes) */
  readonly finePoints?: number;
  /** Time between coarse points: a whole multiple of `fineStep`. @default '5m' */
  readonly coarseStep?: string | number;
  /** Coarse points kept (1 – 10,000). @default 288 (24 hours) */
  readonly coarsePoints?: number;
}

/** `reportSchedule` options: where and how often the report goes. */
export interface ReportScheduleOptions {
  /** How often (a duration, at least 1 s). @default '1h' */
  readonly interval?: string | number;
  /** `md`, `json` or `html`. @default 'md' */
  readonly format?: ReportFormat;
  /** A file path: written whole each time (a temporary file renamed over it). */
  readonly file?: string;
  /** An `http(s)://` URL: the report is POSTed with its media type; any 2xx is success. */
  readonly webhook?: string;
  /** Time allowed for a webhook POST. @default '10s' */
  readonly timeout?: string | number;
}

/** `profiling` options. */
export interface ProfilingOptions {
  /** Length of a CPU or heap-sampling profile when the request names none. @default 10 (seconds) */
  readonly defaultSeconds?: number;
  /** Longest profile a request may ask for (1 – 300). @default 60 (seconds) */
  readonly maxSeconds?: number;
  /** CPU sampling interval in microseconds (50 – 100000). @default 1000 */
  readonly samplingIntervalUs?: number;
  /** Average bytes between heap samples (V8's default). @default '32kb' */
  readonly heapSamplingInterval?: number | string;
  /**
   * Heap operations are refused (503 `OVERLOADED`, `reason: 'memory-tight'`) when heap used +
   * the operation's estimated cost exceeds this share of the heap limit (0.05 – 1). @default 0.9
   */
  readonly maxHeapShare?: number;
  /** A heap snapshot's estimated cost, as a multiple of the heap in use (0 – 10). @default 2 */
  readonly snapshotCostFactor?: number;
  /**
   * Continuous profiling: a CPU profile of `duration` every `every`, kept in a bounded ring
   * (and, with `redis`, in Redis for the fleet); `true` for the defaults. Off unless given.
   * @default false
   */
  readonly continuous?: boolean | ContinuousProfilingOptions;
}

/** `profiling.continuous` options. */
export interface ContinuousProfilingOptions {
  /** Time from the start of one recording to the start of the next (1 s – 24 h; tests: ≥ 100 ms). @default '5m' */
  readonly every?: number | string;
  /** Length of each recording, shorter than `every`. @default '10s' */
  readonly duration?: number | string;
  /** CPU sampling interval in microseconds (50 – 100000). @default `profiling.samplingIntervalUs` (1000) */
  readonly samplingIntervalUs?: number;
  /** Profiles kept in memory (and per instance in Redis), newest first (1 – 1000). @default 12 */
  readonly keep?: number;
  /**
   * Most bytes the in-memory ring holds (each profile's `.cpuprofile` JSON + summary + function
   * table); the oldest are dropped first. @default '16mb'
   */
  readonly maxBytes?: number | string;
  /** Expiry of this instance's profiles in Redis (refreshed on each write). @default keep × every (at least 1 minute) */
  readonly redisTtl?: number | string;
  /** Replaces V8 recording (tests inject synthetic profiles). @default the in-process inspector */
  readonly record?: (recording: CpuRecording) => Promise<CpuProfile>;
}

/** Resolved `profiling.continuous`. */
export interface ContinuousProfilingConfig {
  readonly every: number;
  readonly duration: number;
  readonly samplingIntervalUs: number;
  readonly keep: number;
  readonly maxBytes: number;
  readonly redisTtl: number;
  readonly record: (recording: CpuRecording) => Promise<CpuProfile>;
}

/** `report` options: the targets the rules score against. */
export interface ReportOptions {
  /** p95 latency target. @default 200 (ms) */
  readonly latencyTargetMs?: number;
  /** 5xx share target. @default 0.01 */
  readonly errorRateTarget?: number;
  /** Cache hit ratio target. @default 0.8 */
  readonly cacheHitTarget?: number;
  /** Rate-limit blocked share target. @default 0.01 */
  readonly blockedShareTarget?: number;
  /** Event-loop delay p99 target. @default 50 (ms) */
  readonly eventLoopDelayTargetMs?: number;
  /** Heap used / heap limit target. @default 0.7 */
  readonly heapShareTarget?: number;
  /** Fewer requests (or lookups, or decisions) than this: the rule is not scored. @default 20 */
  readonly minRequests?: number;
}

/** `leakWatch` options. */
export interface LeakWatchOptions {
  /** Time between samples. @default '10s' */
  readonly interval?: number | string;
  /** Samples in the window the trend is fitted over (3 – 10000). @default 30 */
  readonly window?: number;
  /** Samples needed before any alert (3 – window). @default min(10, window) */
  readonly minSamples?: number;
  /** Smallest R² of the least-squares fit for a trend to count as sustained (0 – 1). @default 0.8 */
  readonly minR2?: number;
  /** Smallest growth over the window relative to its start (heap, handles). @default 0.2 */
  readonly minGrowth?: number;
  /** Smallest heap growth over the window. @default '16mb' */
  readonly minHeapGrowth?: number | string;
  /** Smallest growth of active handles + requests over the window. @default 20 */
  readonly minResourceGrowth?: number;
  /** Smallest event-loop utilisation growth over the window (absolute, 0 – 1). @default 0.2 */
  readonly minEluGrowth?: number;
  /** Replaces the process sampler (tests, or figures from elsewhere). @default reads this process */
  readonly sample?: () => LeakSample;
}

/** Resolved `profiling`. */
export interface ProfilingConfig {
  readonly defaultSeconds: number;
  readonly maxSeconds: number;
  readonly samplingIntervalUs: number;
  readonly heapSamplingInterval: number;
  readonly maxHeapShare: number;
  readonly snapshotCostFactor: number;
  /** `undefined`: continuous profiling off. */
  readonly continuous: ContinuousProfilingConfig | undefined;
}

/** Resolved options. */
export interface DashboardConfig {
  readonly sources: ResolvedSources;
  readonly auth: DashboardAuth | undefined;
  readonly basePath: string | undefined;
  readonly redis: SharedRedis | undefined;
  readonly fleetBus: FleetBus | undefined;
  readonly csrfSecret: string | undefined;
  readonly instanceId: string;
  readonly settings: SettingsSource | undefined;
  readonly streamInterval: number;
  readonly heartbeatInterval: number;
  readonly maxStreams: number;
  readonly fleetInterval: number;
  readonly fleetTimeout: number;
  readonly bodyLimit: number;
  readonly title: string;
  readonly registry: Registry;
  readonly logger: PerfstackLogger;
  readonly profiling: ProfilingConfig | undefined;
  readonly report: ReportConfig;
  readonly leakWatch: LeakWatchConfig | undefined;
  readonly reportSchedule: ReportScheduleConfig | undefined;
  readonly history: HistoryConfig | undefined;
}

/** Resolved `reportSchedule`. */
export interface ReportScheduleConfig {
  readonly interval: number;
  readonly format: ReportFormat;
  readonly file: string | undefined;
  readonly webhook: URL | undefined;
  readonly timeout: number;
}

const KNOWN: readonly (keyof DashboardOptions)[] = [
  'sources',
  'auth',
  'basePath',
  'redis',
  'fleetBus',
  'csrfSecret',
  'instanceId',
  'settings',
  'streamInterval',
  'heartbeatInterval',
  'maxStreams',
  'fleetInterval',
  'fleetTimeout',
  'bodyLimit',
  'title',
  'registry',
  'logger',
  'profiling',
  'report',
  'leakWatch',
  'reportSchedule',
  'history',
];

/** Method names each source must have. */
const SOURCE_METHODS: Readonly<Record<keyof Omit<DashboardSources, 'health'>, readonly string[]>> = {
  timing: ['snapshot'],
  cache: ['stats', 'invalidate'],
  data: ['stats'],
  rateLimit: ['stats', 'resetKey'],
  circuitBreaker: ['snapshot', 'reset'],
  sizeLimit: ['stats'],
  outbound: ['snapshot'],
};

function readSources(value: unknown): ResolvedSources {
  const sources = checkOptionsObject(PKG, 'dashboard({ sources })', value as DashboardSources | undefined, [
    ...Object.keys(SOURCE_METHODS),
    'health',
  ]);
  const out: Record<string, unknown> = {};
  for (const [name, methods] of Object.entries(SOURCE_METHODS)) {
    const source = (sources as Record<string, unknown>)[name];
    if (source === undefined) continue;
    // Layers are middleware functions that carry these methods, so functions qualify too.
    const ok =
      (typeof source === 'object' || typeof source === 'function') &&
      source !== null &&
      methods.every((m) => typeof (source as Record<string, unknown>)[m] === 'function');
    if (!ok)
      throw optionTypeError(
        PKG,
        `sources.${name}`,
        source,
        `an object with ${methods.map((m) => `${m}()`).join(' and ')}`,
      );
    out[name] = source;
  }
  const health = sources.health as unknown;
  if (health !== undefined) {
    // A `healthHandler()` is itself a function (the middleware): use its report(), never call it bare.
    const report = (health as { report?: unknown }).report;
    if (typeof health === 'function' && typeof report === 'function') out.health = report as () => HealthReport;
    else if (typeof health === 'function') out.health = health;
    else
      throw optionTypeError(
        PKG,
        'sources.health',
        health,
        'a function returning the health report, or a healthHandler()',
      );
  }
  return out as ResolvedSources;
}

function readBasePath(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  const accepted = "a path starting with '/', e.g. '/dashboard' (no query, no '..')";
  if (typeof value !== 'string') throw optionTypeError(PKG, 'basePath', value, accepted);
  const trimmed = value.replace(/\/+$/, '');
  if (!value.startsWith('/') || /[?#\\%]|\/\.\.?(\/|$)|\/\//.test(value) || trimmed === '') {
    throw optionRangeError(PKG, 'basePath', value, accepted);
  }
  return trimmed;
}

/** What the fleet view needs from a transport: Redis pub/sub, or the cluster channel. */
export type FleetBus = Pick<SharedRedis, 'isUp' | 'publish' | 'subscribe'>;

function readRedis(value: unknown): SharedRedis | undefined {
  if (value === undefined) return undefined;
  const r = value as Partial<SharedRedis>;
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof r.publish !== 'function' ||
    typeof r.subscribe !== 'function'
  ) {
    throw optionTypeError(PKG, 'redis', value, 'a SharedRedis from createSharedRedis() (the stack passes its own)');
  }
  return value as SharedRedis;
}

/** Shortest `csrfSecret`: 32 characters, e.g. 16 random bytes as hex or 24 as base64. */
const MIN_CSRF_SECRET_LENGTH = 32;

function readCsrfSecret(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string' && value.length >= MIN_CSRF_SECRET_LENGTH) return value;
  // The value is a secret, or meant to be one: the message gives its type and length, never its text.
  const type = Array.isArray(value) ? 'array' : typeof value;
  const got =
    typeof value === 'string'
      ? `a string of ${value.length} characters`
      : value === null
        ? 'null'
        : `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
  throw new TypeError(
    `${PKG}: option "csrfSecret" must be a string of at least ${MIN_CSRF_SECRET_LENGTH} characters ` +
      `shared by every instance (e.g. randomBytes(32).toString('hex')), got ${got}`,
  );
}

function readInstanceId(value: unknown): string {
  if (value === undefined) return `${hostname()}:${process.pid}:${randomBytes(2).toString('hex')}`;
  if (typeof value !== 'string' || !/^[\w.:@/-]{1,100}$/.test(value)) {
    throw optionTypeError(PKG, 'instanceId', value, 'a string of 1 to 100 letters, digits or . : @ / _ -');
  }
  return value;
}

function readTitle(value: unknown): string {
  if (value === undefined) return 'perfstack';
  if (typeof value !== 'string' || value.length === 0 || value.length > 100) {
    throw optionTypeError(PKG, 'title', value, 'a string of 1 to 100 characters');
  }
  return value;
}

function readRegistry(value: unknown): Registry {
  if (value === undefined) return createRegistry();
  const r = value as Partial<Registry>;
  if (typeof value !== 'object' || value === null || typeof r.getSingleMetric !== 'function') {
    throw optionTypeError(PKG, 'registry', value, 'a prom-client Registry');
  }
  return value as Registry;
}

function readLogger(value: unknown): PerfstackLogger {
  if (value === undefined) return consoleLogger;
  const l = value as Partial<PerfstackLogger>;
  if (typeof value !== 'object' || value === null || typeof l.warn !== 'function' || typeof l.error !== 'function') {
    throw optionTypeError(PKG, 'logger', value, 'an object with warn() and error()');
  }
  return value as PerfstackLogger;
}

function readProfiling(value: unknown): ProfilingConfig | undefined {
  if (value === false) return undefined;
  const o = checkOptionsObject<ProfilingOptions>(
    PKG,
    'dashboard({ profiling })',
    value === true ? undefined : (value as ProfilingOptions),
    [
      'defaultSeconds',
      'maxSeconds',
      'samplingIntervalUs',
      'heapSamplingInterval',
      'maxHeapShare',
      'snapshotCostFactor',
      'continuous',
    ],
  );
  const samplingIntervalUs = readInteger(PKG, 'profiling.samplingIntervalUs', o.samplingIntervalUs, 1000, 50, 100_000);
  const maxSeconds = readInteger(PKG, 'profiling.maxSeconds', o.maxSeconds, 60, 1, 300);
  return {
    defaultSeconds: readInteger(
      PKG,
      'profiling.defaultSeconds',
      o.defaultSeconds,
      Math.min(10, maxSeconds),
      1,
      maxSeconds,
    ),
    maxSeconds,
    samplingIntervalUs,
    heapSamplingInterval: parseBytes(o.heapSamplingInterval ?? 32 * 1024, 'profiling.heapSamplingInterval', {
      pkg: PKG,
      min: 512,
      max: 1024 * 1024,
    }),
    maxHeapShare: readNumber(PKG, 'profiling.maxHeapShare', o.maxHeapShare, 0.9, 0.05, 1),
    snapshotCostFactor: readNumber(PKG, 'profiling.snapshotCostFactor', o.snapshotCostFactor, 2, 0, 10),
    continuous: readContinuous(o.continuous, samplingIntervalUs),
  };
}

function readContinuous(value: unknown, samplingIntervalUs: number): ContinuousProfilingConfig | undefined {
  if (value === undefined || value === false) return undefined;
  const o = checkOptionsObject<ContinuousProfilingOptions>(
    PKG,
    'dashboard({ profiling: { continuous } })',
    value === true ? undefined : (value as ContinuousProfilingOptions),
    ['every', 'duration', 'samplingIntervalUs', 'keep', 'maxBytes', 'redisTtl', 'record'],
  );
  const name = 'profiling.continuous.';
  const every = parseDuration(o.every ?? '5m', `${name}every`, { pkg: PKG, min: 100, max: 86_400_000 });
  const duration = parseDuration(o.duration ?? '10s', `${name}duration`, { pkg: PKG, min: 10, max: 300_000 });
  if (duration >= every) {
    throw optionRangeError(PKG, `${name}duration`, o.duration ?? duration, `shorter than every (${every} ms)`);
  }
  const keep = readInteger(PKG, `${name}keep`, o.keep, 12, 1, 1000);
  return {
    every,
    duration,
    samplingIntervalUs: readInteger(
      PKG,
      `${name}samplingIntervalUs`,
      o.samplingIntervalUs,
      samplingIntervalUs,
      50,
      100_000,
    ),
    keep,
    maxBytes: parseBytes(o.maxBytes ?? 16 * 1024 * 1024, `${name}maxBytes`, { pkg: PKG, min: 1024, max: 1024 ** 3 }),
    redisTtl: parseDuration(o.redisTtl ?? Math.max(60_000, keep * every), `${name}redisTtl`, {
      pkg: PKG,
      min: 1000,
      max: 30 * 86_400_000,
    }),
    record: readFunction(PKG, `${name}record`, o.record, recordCpuProfile),
  };
}

function readReport(value: unknown): ReportConfig {
  const o = checkOptionsObject<ReportOptions>(PKG, 'dashboard({ report })', value as ReportOptions | undefined, [
    'latencyTargetMs',
    'errorRateTarget',
    'cacheHitTarget',
    'blockedShareTarget',
    'eventLoopDelayTargetMs',
    'heapShareTarget',
    'minRequests',
  ]);
  return {
    latencyTargetMs: readNumber(PKG, 'report.latencyTargetMs', o.latencyTargetMs, 200, 1, 600_000),
    errorRateTarget: readNumber(PKG, 'report.errorRateTarget', o.errorRateTarget, 0.01, 0.0001, 0.5),
    cacheHitTarget: readNumber(PKG, 'report.cacheHitTarget', o.cacheHitTarget, 0.8, 0.01, 1),
    blockedShareTarget: readNumber(PKG, 'report.blockedShareTarget', o.blockedShareTarget, 0.01, 0.0001, 0.5),
    eventLoopDelayTargetMs: readNumber(PKG, 'report.eventLoopDelayTargetMs', o.eventLoopDelayTargetMs, 50, 1, 60_000),
    heapShareTarget: readNumber(PKG, 'report.heapShareTarget', o.heapShareTarget, 0.7, 0.05, 0.94),
    minRequests: readInteger(PKG, 'report.minRequests', o.minRequests, 20, 1, 1_000_000),
  };
}

function readLeakWatch(value: unknown): LeakWatchConfig | undefined {
  if (value === false) return undefined;
  const o = checkOptionsObject<LeakWatchOptions>(
    PKG,
    'dashboard({ leakWatch })',
    value === true ? undefined : (value as LeakWatchOptions),
    [
      'interval',
      'window',
      'minSamples',
      'minR2',
      'minGrowth',
      'minHeapGrowth',
      'minResourceGrowth',
      'minEluGrowth',
      'sample',
    ],
  );
  const window = readInteger(PKG, 'leakWatch.window', o.window, 30, 3, 10_000);
  return {
    interval: parseDuration(o.interval ?? 10_000, 'leakWatch.interval', { pkg: PKG, min: 50, max: 3_600_000 }),
    window,
    minSamples: readInteger(PKG, 'leakWatch.minSamples', o.minSamples, Math.min(10, window), 3, window),
    minR2: readNumber(PKG, 'leakWatch.minR2', o.minR2, 0.8, 0, 1),
    minGrowth: readNumber(PKG, 'leakWatch.minGrowth', o.minGrowth, 0.2, 0, 100),
    minHeapGrowth: parseBytes(o.minHeapGrowth ?? 16 * 1024 * 1024, 'leakWatch.minHeapGrowth', { pkg: PKG, min: 0 }),
    minResourceGrowth: readInteger(PKG, 'leakWatch.minResourceGrowth', o.minResourceGrowth, 20, 0, 1_000_000),
    minEluGrowth: readNumber(PKG, 'leakWatch.minEluGrowth', o.minEluGrowth, 0.2, 0, 1),
    sample: readFunction<() => LeakSample>(PKG, 'leakWatch.sample', o.sample),
  };
}

/**
 * Validates and resolves the options.
 *
 * @throws {TypeError} on an unknown key or a value of the wrong type
 * @throws {RangeError} on a value out of range
 */
export function resolveOptions(options: DashboardOptions | undefined): DashboardConfig {
  const o = checkOptionsObject(PKG, 'dashboard', options, KNOWN);
  const duration = (name: string, value: unknown, fallback: number, min: number, max: number) =>
    parseDuration(value ?? fallback, name, { pkg: PKG, min, max });
  const fleetInterval = duration('fleetInterval', o.fleetInterval, 2000, 50, 60_000);
  const fleetTimeout = duration('fleetTimeout', o.fleetTimeout, 10_000, 100, 600_000);
  if (fleetTimeout <= fleetInterval) {
    throw optionRangeError(
      PKG,
      'fleetTimeout',
      o.fleetTimeout ?? fleetTimeout,
      `longer than fleetInterval (${fleetInterval} ms)`,
    );
  }
  return {
    sources: readSources(o.sources),
    auth: readAuth(PKG, 'auth', o.auth),
    basePath: readBasePath(o.basePath),
    redis: readRedis(o.redis),
    fleetBus: o.fleetBus === undefined ? undefined : (readRedis(o.fleetBus) as unknown as FleetBus),
    csrfSecret: readCsrfSecret(o.csrfSecret),
    instanceId: readInstanceId(o.instanceId),
    settings: readSettings(o.settings),
    streamInterval: duration('streamInterval', o.streamInterval, 1000, 100, 60_000),
    heartbeatInterval: duration('heartbeatInterval', o.heartbeatInterval, 15_000, 1000, 300_000),
    maxStreams: readInteger(PKG, 'maxStreams', o.maxStreams, 10, 1, 1000),
    fleetInterval,
    fleetTimeout,
    bodyLimit: parseBytes(o.bodyLimit ?? 16 * 1024, 'bodyLimit', { pkg: PKG, min: 64, max: 1024 * 1024 }),
    title: readTitle(o.title),
    registry: readRegistry(o.registry),
    logger: readLogger(o.logger),
    profiling: readProfiling(o.profiling),
    report: readReport(o.report),
    leakWatch: readLeakWatch(o.leakWatch),
    reportSchedule: readReportSchedule(o.reportSchedule),
    history: readHistory(o.history),
  };
}

function readSettings(value: unknown): SettingsSource | undefined {
  if (value === undefined) return undefined;
  const v = value as Partial<SettingsSource> | null;
  if (
    typeof v !== 'object' ||
    v === null ||
    ['list', 'set', 'undo', 'audit'].some((m) => typeof (v as Record<string, unknown>)[m] !== 'function')
  ) {
    throw optionTypeError(
      PKG,
      'settings',
      value,
      'a settings API with list(), set(), undo() and audit() (stack.settings)',
    );
  }
  return v as SettingsSource;
}

function readHistory(value: unknown): HistoryConfig | undefined {
  if (value === false) return undefined;
  const o = checkOptionsObject<HistoryOptions>(
    PKG,
    'dashboard({ history })',
    value === true || value === undefined ? undefined : (value as HistoryOptions),
    ['fineStep', 'finePoints', 'coarseStep', 'coarsePoints'],
  );
  const fineStep = parseDuration(o.fineStep ?? DEFAULT_HISTORY.fineStep, 'history.fineStep', {
    pkg: PKG,
    min: 100,
    max: 3_600_000,
  });
  const coarseStep = parseDuration(o.coarseStep ?? DEFAULT_HISTORY.coarseStep, 'history.coarseStep', {
    pkg: PKG,
    min: fineStep,
    max: 86_400_000,
  });
  if (coarseStep % fineStep !== 0) {
    throw optionRangeError(PKG, 'history.coarseStep', o.coarseStep, `a whole multiple of fineStep (${fineStep} ms)`);
  }
  return {
    fineStep,
    finePoints: readInteger(PKG, 'history.finePoints', o.finePoints, DEFAULT_HISTORY.finePoints, 1, 10_000),
    coarseStep,
    coarsePoints: readInteger(PKG, 'history.coarsePoints', o.coarsePoints, DEFAULT_HISTORY.coarsePoints, 1, 10_000),
  };
}

function readReportSchedule(value: unknown): ReportScheduleConfig | undefined {
  if (value === undefined || value === false) return undefined;
  const o = checkOptionsObject<ReportScheduleOptions>(
    PKG,
    'dashboard({ reportSchedule })',
    value as ReportScheduleOptions,
    ['interval', 'format', 'file', 'webhook', 'timeout'],
  );
  const format = o.format ?? 'md';
  if (format !== 'md' && format !== 'json' && format !== 'html') {
    throw optionTypeError(PKG, 'reportSchedule.format', format, "'md', 'json' or 'html'");
  }
  if (o.file !== undefined && (typeof o.file !== 'string' || o.file === '')) {
    throw optionTypeError(PKG, 'reportSchedule.file', o.file, 'a non-empty file path');
  }
  let webhook: URL | undefined;
  if (o.webhook !== undefined) {
    try {
      webhook = new URL(String(o.webhook));
    } catch {
      webhook = undefined;
    }
    if (typeof o.webhook !== 'string' || (webhook?.protocol !== 'http:' && webhook?.protocol !== 'https:')) {
      throw optionTypeError(PKG, 'reportSchedule.webhook', o.webhook, 'an http:// or https:// URL');
    }
  }
  if (o.file === undefined && webhook === undefined) {
    throw optionTypeError(PKG, 'reportSchedule', value, 'an object with `file` and/or `webhook`');
  }
  return {
    interval: parseDuration(o.interval ?? '1h', 'reportSchedule.interval', {
      pkg: PKG,
      min: 1000,
      max: 7 * 86_400_000,
    }),
    format,
    file: o.file,
    webhook,
    timeout: parseDuration(o.timeout ?? '10s', 'reportSchedule.timeout', { pkg: PKG, min: 100, max: 300_000 }),
  };
}
