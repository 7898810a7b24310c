/**
 * The dashboard's JSON snapshot (ARCHITECTURE.md, `GET /dashboard/api/snapshot`), built from the
 * layers' data contracts only (ARCHITECTURE.md rule 11): the dashboard never reaches into a
 * layer's internals, and a layer that is absent is `null` in the snapshot.
 */
import type {
  Alert,
  BreakerSnapshot,
  CacheSource,
  CircuitBreakerSource,
  DataCacheSource,
  DataCacheStats,
  LatencySummary,
  OffloadPoolFigures,
  OnceLogger,
  OutboundClientFigures,
  OutboundSource,
  ProcessStats,
  RateLimitSource,
  RateLimitStats,
  RouteStats,
  SizeLimitSource,
  TimingSource,
  WindowStats,
} from '@perfstack/core';
import type { HealthHandler, HealthReport } from './health.js';
import type { ProcessSampler } from './process-sampler.js';

/** The data sources the dashboard reads. Each is optional. */
export interface DashboardSources {
  /** Request timing, rolling windows, per-route table, process figures and alerts (@perfstack/timing). */
  readonly timing?: TimingSource;
  /** Cache stats and invalidation (@perfstack/cache). */
  readonly cache?: CacheSource;
  /** The data cache's stats, per namespace (@perfstack/cache `createCache()`, the preset's `stack.data`). */
  readonly data?: DataCacheSource;
  /** Rate-limit stats and key reset (@perfstack/rate-limit). */
  readonly rateLimit?: RateLimitSource;
  /** Breaker states, overload and reset (@perfstack/circuit-breaker). */
  readonly circuitBreaker?: CircuitBreakerSource;
  /** Rejections by limit (@perfstack/size-limit). */
  readonly sizeLimit?: SizeLimitSource;
  /** Outbound HTTP clients (origins, retry rate) and offload pools (perfstack's `stack.client()`, `stack.offload()`). */
  readonly outbound?: OutboundSource;
  /** The whole `/health` report: a `healthHandler()` (its `report()` is used) or a function returning it. */
  readonly health?: HealthHandler | (() => HealthReport);
}

/** The sources once options are resolved: `health` is always a plain function. */
export type ResolvedSources = Omit<DashboardSources, 'health'> & { readonly health?: () => HealthReport };

/** Request totals (the 1-minute window for rates). */
export interface RequestFigures {
  readonly total: number;
  readonly inFlight: number;
  /** Requests per second over the last minute. */
  readonly rps: number;
  /** 5xx responses in the last minute. */
  readonly errors: number;
  /** 5xx share of the last minute's requests, 0..1. */
  readonly errorRate: number;
  readonly statusClasses: Readonly<Record<string, number>>;
}

/** Cache figures (totals since start). */
export interface CacheFigures {
  readonly hits: number;
  readonly misses: number;
  readonly stale: number;
  readonly bypass: number;
  readonly evictions: number;
  /** Entries loaded into memory at start from the most read in Redis (warm start). */
  readonly warmStarted: number;
  readonly entries: number;
  readonly bytes: number;
  readonly hitRatio: number;
}

/** Outbound clients and offload pools. */
export interface OutboundFigures {
  readonly clients: readonly OutboundClientFigures[];
  readonly pools: readonly OffloadPoolFigures[];
  /** The highest retry rate of any client, 0..1 (the retry-rate KPI). */
  readonly retryRate: number;
}

/** Circuit-breaker figures. */
export interface BreakerFigures {
  readonly list: readonly BreakerSnapshot[];
  readonly open: number;
  readonly halfOpen: number;
  readonly overloaded: boolean;
  readonly shed: number;
}

/** Size-limit figures. */
export interface SizeLimitFigures {
  readonly rejected: Readonly<Record<string, number>>;
  readonly total: number;
}

/** One instance in the fleet view. */
export interface InstanceSummary {
  readonly id: string;
  /** True for the instance that answered. */
  readonly self: boolean;
  /** When that instance built its snapshot (its clock). */
  readonly at: number;
  /** When this instance last heard from it (this instance's clock). */
  readonly lastSeen: number;
  readonly requests: {
    readonly total: number;
    readonly rps: number;
    readonly errorRate: number;
    readonly inFlight: number;
  };
  readonly latency: { readonly p50: number; readonly p95: number; readonly p99: number };
  readonly cache: { readonly hits: number; readonly misses: number; readonly hitRatio: number } | null;
  readonly rateLimit: { readonly blocked: number } | null;
  readonly breakers: { readonly open: number; readonly total: number };
  readonly process: {
    readonly rssBytes: number;
    readonly heapUsedBytes: number;
    readonly cpuPercent: number;
    readonly eventLoopDelayP99Ms: number;
  };
  readonly alerts: number;
}

/** Sums over the fleet. Latency percentiles cannot be summed: the worst instance's is shown. */
export interface FleetTotals {
  readonly instances: number;
  readonly requests: {
    readonly total: number;
    readonly rps: number;
    readonly errorRate: number;
    readonly inFlight: number;
  };
  readonly latency: { readonly p95Max: number; readonly p99Max: number };
  readonly cache: { readonly hits: number; readonly misses: number; readonly hitRatio: number };
  readonly rateLimit: { readonly blocked: number };
  readonly breakers: { readonly open: number };
  readonly process: { readonly rssBytes: number };
  readonly alerts: number;
}

/** The fleet view (present when the dashboard has a shared Redis). */
export interface FleetFigures {
  readonly instances: readonly InstanceSummary[];
  readonly totals: FleetTotals;
  /** False while Redis is down: only this instance is known then. */
  readonly connected: boolean;
}

/** `GET /api/snapshot`. */
export interface DashboardSnapshot {
  readonly version: 1;
  readonly at: number;
  readonly instanceId: string;
  /** Which sources are configured. */
  readonly sources: Readonly<
    Record<'timing' | 'cache' | 'data' | 'rateLimit' | 'circuitBreaker' | 'sizeLimit' | 'outbound' | 'health', boolean>
  >;
  readonly requests: RequestFigures;
  /** Last minute, milliseconds. */
  readonly latency: LatencySummary;
  /** The 1, 5 and 15-minute windows as timing reports them, or `null` without timing. */
  readonly windows: { readonly '1m': WindowStats; readonly '5m': WindowStats; readonly '15m': WindowStats } | null;
  /** Per-route table (timing's 5-minute top list). */
  readonly routes: readonly RouteStats[];
  readonly cache: CacheFigures | null;
  /**
   * The data cache next to the response cache: hits, misses, stale, hit ratio, entries,
   * bytes, evictions, refreshes-ahead and warm-started entries, overall and per namespace.
   */
  readonly data: DataCacheStats | null;
  readonly rateLimit: RateLimitStats | null;
  readonly breakers: BreakerFigures | null;
  readonly sizeLimit: SizeLimitFigures | null;
  /** Outbound clients and offload pools, or `null` without an outbound source. */
  readonly outbound: OutboundFigures | null;
  readonly process: ProcessStats;
  /** Timing's alerts plus the dashboard's own (open breakers, overload, the leak watch). */
  readonly alerts: readonly Alert[];
  readonly health: HealthReport | null;
  readonly fleet: FleetFigures | null;
  /** Sources that threw while this snapshot was built (their section is `null`). */
  readonly sourceErrors: readonly string[];
}

const ZERO_LATENCY: LatencySummary = { p50: 0, p95: 0, p99: 0, mean: 0, max: 0 };

/** Builds snapshots; one per stream tick, one per `/api/snapshot` request. */
export class SnapshotBuilder {
  readonly #sources: ResolvedSources;
  readonly #sampler: ProcessSampler | undefined;
  readonly #log: OnceLogger;
  readonly #instanceId: string;
  readonly #now: () => number;
  readonly #present: DashboardSnapshot['sources'];
  readonly #ownAlerts: () => readonly Alert[];

  constructor(
    sources: ResolvedSources,
    sampler: ProcessSampler | undefined,
    log: OnceLogger,
    instanceId: string,
    now: () => number,
    ownAlerts: () => readonly Alert[] = () => [],
  ) {
    this.#ownAlerts = ownAlerts;
    this.#sources = sources;
    this.#sampler = sampler;
    this.#log = log;
    this.#instanceId = instanceId;
    this.#now = now;
    this.#present = {
      timing: sources.timing !== undefined,
      cache: sources.cache !== undefined,
      data: sources.data !== undefined,
      rateLimit: sources.rateLimit !== undefined,
      circuitBreaker: sources.circuitBreaker !== undefined,
      sizeLimit: sources.sizeLimit !== undefined,
      outbound: sources.outbound !== undefined,
      health: sources.health !== undefined,
    };
  }

  /** Reads one source, turning a throw into `null` plus an entry in `errors`. */
  #read<T>(name: string, errors: string[], read: () => T): T | null {
    try {
      return read();
    } catch (error) {
      errors.push(name);
      this.#log.errorOnce(
        `DASHBOARD_SOURCE_${name.toUpperCase()}`,
        `the ${name} source threw while building a snapshot`,
        {
          error: error instanceof Error ? error.message : String(error),
        },
      );
      return null;
    }
  }

  /** Builds the local part of a snapshot (no fleet). */
  build(fleet: FleetFigures | null = null): DashboardSnapshot {
    const s = this.#sources;
    const errors: string[] = [];
    const timing = s.timing ? this.#read('timing', errors, () => s.timing!.snapshot()) : null;
    const cacheStats = s.cache ? this.#read('cache', errors, () => s.cache!.stats()) : null;
    const data = s.data ? this.#read('data', errors, () => s.data!.stats()) : null;
    const rateLimit = s.rateLimit ? this.#read('rateLimit', errors, () => s.rateLimit!.stats()) : null;
    const breakerData = s.circuitBreaker
      ? this.#read('circuitBreaker', errors, () => s.circuitBreaker!.snapshot())
      : null;
    const sizeData = s.sizeLimit ? this.#read('sizeLimit', errors, () => s.sizeLimit!.stats()) : null;
    const outbound = s.outbound ? this.#read('outbound', errors, () => outboundFigures(s.outbound!.snapshot())) : null;
    const health = s.health ? this.#read('health', errors, () => s.health!()) : null;
    const at = this.#now();
    const minute = timing?.windows['1m'];
    const breakers = breakerData ? breakerFigures(breakerData) : null;
    return {
      version: 1,
      at,
      instanceId: this.#instanceId,
      sources: this.#present,
      requests: {
        total: timing?.totalRequests ?? 0,
        inFlight: timing?.inFlight ?? 0,
        rps: minute?.rps ?? 0,
        errors: minute?.errors ?? 0,
        errorRate: minute?.errorRate ?? 0,
        statusClasses: minute?.statusClasses ?? {},
      },
      latency: minute?.latency ?? ZERO_LATENCY,
      windows: timing?.windows ?? null,
      routes: timing?.routes ?? [],
      cache: cacheStats
        ? {
            hits: cacheStats.hits,
            misses: cacheStats.misses,
            stale: cacheStats.stale,
            bypass: cacheStats.bypass,
            evictions: cacheStats.evictions,
            warmStarted: cacheStats.warmStarted ?? 0,
            entries: cacheStats.entries,
            bytes: cacheStats.bytes,
            hitRatio: cacheStats.hitRatio,
          }
        : null,
      data,
      rateLimit,
      breakers,
      sizeLimit: sizeData ? sizeFigures(sizeData.rejected) : null,
      outbound,
      process: timing?.process ?? this.#sampler?.stats() ?? emptyProcess(),
      alerts: [
        ...(timing?.alerts ?? []),
        ...breakerAlerts(breakers, at),
        ...retryAlerts(outbound, at),
        ...this.#ownAlerts(),
      ],
      health,
      fleet,
      sourceErrors: errors,
    };
  }
}

function breakerFigures(data: ReturnType<CircuitBreakerSource['snapshot']>): BreakerFigures {
  let open = 0;
  let halfOpen = 0;
  for (const b of data.breakers) {
    if (b.state === 'open') open++;
    else if (b.state === 'half-open') halfOpen++;
  }
  return { list: data.breakers, open, halfOpen, overloaded: data.overloaded, shed: data.shed };
}

function outboundFigures(data: ReturnType<OutboundSource['snapshot']>): OutboundFigures {
  let retryRate = 0;
  for (const c of data.clients) if (c.retryRate > retryRate) retryRate = c.retryRate;
  return { clients: data.clients, pools: data.pools, retryRate };
}

/** The seed's alert: an outbound client retrying more than 10 % of its calls. */
export const RETRY_RATE_ALERT = 0.1;

/** The dashboard's own alerts about outbound clients: a retry rate over 10 %. */
function retryAlerts(outbound: OutboundFigures | null, at: number): Alert[] {
  if (outbound === null) return [];
  const alerts: Alert[] = [];
  for (const c of outbound.clients) {
    if (c.retryRate <= RETRY_RATE_ALERT) continue;
    const out = c.origins.filter((o) => !o.healthy).map((o) => o.origin);
    alerts.push({
      id: `retry-rate:${c.name}`,
      rule: 'retry-rate',
      severity: 'warning',
      since: at,
      value: Math.round(c.retryRate * 1000) / 1000,
      threshold: RETRY_RATE_ALERT,
      message:
        `Outbound client "${c.name}" retries ${(c.retryRate * 100).toFixed(1)}% of its calls (over 10%)` +
        (out.length > 0 ? `; origins out: ${out.join(', ')}.` : '.'),
      recommendation:
        `The service behind "${c.name}" is failing or slow: check its origins below and its own health. ` +
        'Retries add load to a struggling dependency: keep the retry budget on (retry.budget), lower maxAttempts, ' +
        'or raise the per-attempt timeout if the calls are slow rather than failing.',
      layer: 'client',
      route: c.name,
    });
  }
  return alerts;
}

function sizeFigures(rejected: Readonly<Record<string, number>>): SizeLimitFigures {
  let total = 0;
  for (const value of Object.values(rejected)) total += value;
  return { rejected, total };
}

/** The dashboard's own alerts: what the breakers say, in plain words. */
function breakerAlerts(breakers: BreakerFigures | null, at: number): Alert[] {
  if (breakers === null) return [];
  const alerts: Alert[] = [];
  for (const b of breakers.list) {
    if (b.state !== 'open') continue;
    alerts.push({
      id: `breaker-open:${b.name}`,
      rule: 'breaker-open',
      severity: 'critical',
      since: b.openedAt ?? at,
      value: b.failures,
      threshold: 0,
      message: `Circuit breaker "${b.name}" is open: its requests get 503 CIRCUIT_OPEN.`,
      recommendation:
        `Find why "${b.name}" fails (its handler or the service it calls: see the error rate and p99 of that route). ` +
        'If the failures were a short spike, reset the breaker below; if the route is slow rather than broken, ' +
        'raise circuitBreaker.timeout; if it opens too eagerly, raise failureThreshold.',
      layer: 'circuit-breaker',
      route: b.name,
    });
  }
  if (breakers.overloaded) {
    alerts.push({
      id: 'overloaded',
      rule: 'overloaded',
      severity: 'critical',
      since: at,
      value: breakers.shed,
      threshold: 0,
      message: `The server is shedding load (${breakers.shed} requests refused with 503 OVERLOADED so far).`,
      recommendation:
        'The event loop or the bulkhead is saturated: look at event-loop delay and the slowest routes, add instances, ' +
        'or raise circuitBreaker.maxConcurrent if the machine has headroom.',
      layer: 'circuit-breaker',
    });
  }
  return alerts;
}

function emptyProcess(): ProcessStats {
  return {
    rssBytes: 0,
    heapUsedBytes: 0,
    heapTotalBytes: 0,
    heapLimitBytes: 0,
    eventLoopDelayMs: { p50: 0, p99: 0, max: 0 },
    cpuPercent: 0,
    uptimeSeconds: 0,
  };
}

/** The part of a snapshot another instance needs for the fleet view. */
export function summarize(snapshot: DashboardSnapshot, self: boolean, lastSeen: number): InstanceSummary {
  const cache = snapshot.cache;
  return {
    id: snapshot.instanceId,
    self,
    at: snapshot.at,
    lastSeen,
    requests: {
      total: snapshot.requests.total,
      rps: snapshot.requests.rps,
      errorRate: snapshot.requests.errorRate,
      inFlight: snapshot.requests.inFlight,
    },
    latency: { p50: snapshot.latency.p50, p95: snapshot.latency.p95, p99: snapshot.latency.p99 },
    cache: cache ? { hits: cache.hits, misses: cache.misses, hitRatio: cache.hitRatio } : null,
    rateLimit: snapshot.rateLimit ? { blocked: snapshot.rateLimit.blocked } : null,
    breakers: { open: snapshot.breakers?.open ?? 0, total: snapshot.breakers?.list.length ?? 0 },
    process: {
      rssBytes: snapshot.process.rssBytes,
      heapUsedBytes: snapshot.process.heapUsedBytes,
      cpuPercent: snapshot.process.cpuPercent,
      eventLoopDelayP99Ms: snapshot.process.eventLoopDelayMs.p99,
    },
    alerts: snapshot.alerts.length,
  };
}

/** Sums a fleet. */
export function totalsOf(instances: readonly InstanceSummary[]): FleetTotals {
  let total = 0;
  let rps = 0;
  let errorWeighted = 0;
  let inFlight = 0;
  let p95Max = 0;
  let p99Max = 0;
  let hits = 0;
  let misses = 0;
  let blocked = 0;
  let open = 0;
  let rss = 0;
  let alerts = 0;
  for (const i of instances) {
    total += i.requests.total;
    rps += i.requests.rps;
    errorWeighted += i.requests.errorRate * i.requests.rps;
    inFlight += i.requests.inFlight;
    p95Max = Math.max(p95Max, i.latency.p95);
    p99Max = Math.max(p99Max, i.latency.p99);
    hits += i.cache?.hits ?? 0;
    misses += i.cache?.misses ?? 0;
    blocked += i.rateLimit?.blocked ?? 0;
    open += i.breakers.open;
    rss += i.process.rssBytes;
    alerts += i.alerts;
  }
  return {
    instances: instances.length,
    requests: { total, rps: round(rps), errorRate: rps > 0 ? round(errorWeighted / rps, 4) : 0, inFlight },
    latency: { p95Max, p99Max },
    cache: { hits, misses, hitRatio: hits + misses > 0 ? round(hits / (hits + misses), 4) : 0 },
    rateLimit: { blocked },
    breakers: { open },
    process: { rssBytes: rss },
    alerts,
  };
}

function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
