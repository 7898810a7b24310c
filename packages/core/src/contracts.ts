/**
 * What layers expose to the preset, `/health` and the dashboard (ARCHITECTURE.md rule 11:
 * layers expose data, the dashboard reads it and never reaches into internals).
 *
 * Every layer factory accepts the {@link SharedContext} members as options, so that the
 * preset can hand one registry, one Redis connection and one logger to all of them.
 */
import type { Registry } from 'prom-client';
import type { SharedRedis } from './redis.js';
import type { PerfstackLogger } from './types.js';

/** Resources the preset shares with every layer. Each is optional when a layer runs alone. */
export interface SharedContext {
  /** The metrics registry. A layer alone makes its own when absent. */
  readonly registry?: Registry;
  /** The shared Redis connection (cache L2, rate-limit store, pub/sub). */
  readonly redis?: SharedRedis;
  /** Where serve-time problems go. */
  readonly logger?: PerfstackLogger;
}

/** One check in `/health`. */
export interface HealthCheck {
  /** `ok`: fine; `degraded`: serving with reduced guarantees; `down`: cannot serve. */
  readonly status: 'ok' | 'degraded' | 'down';
  /** Free-form detail for operators. */
  readonly detail?: string;
  readonly [key: string]: unknown;
}

/** A layer that can report on its own health. */
export interface HealthSource {
  health(): HealthCheck;
}

/** Cache numbers, overall and per route. */
export interface CacheStats {
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
  readonly routes: Readonly<
    Record<
      string,
      {
        readonly hits: number;
        readonly misses: number;
        readonly stale: number;
        readonly bypass: number;
        readonly hitRatio: number;
        /** Freshness lifetime of the last entry stored for the route, when known. */
        readonly ttlMs?: number;
      }
    >
  >;
}

/** What the dashboard needs from the cache. */
export interface CacheSource {
  stats(): CacheStats;
  invalidate(selector: {
    readonly key?: string;
    readonly tags?: readonly string[];
    readonly prefix?: string;
  }): Promise<number>;
}

/** Numbers of one data-cache namespace. */
export interface DataNamespaceStats {
  /** Entries in this namespace's memory (L1). */
  readonly entries: number;
  /** Bytes accounted in this namespace's memory. */
  readonly bytes: number;
  /** Entries evicted from this namespace's memory to stay within its bounds. */
  readonly evictions: number;
  /** Reads answered from memory or Redis without calling the loader. */
  readonly hits: number;
  /** Reads that found nothing (and, for `wrap`, called or waited for the loader). */
  readonly misses: number;
  /** `wrap` calls answered with an entry past its lifetime while it was refreshed. */
  readonly stale: number;
  /** `hits / (hits + misses)`, stale answers counted as hits. */
  readonly hitRatio: number;
  /** Entries refreshed in the background before they expired (refresh-ahead). */
  readonly refreshesAhead: number;
  /** Entries loaded into memory at start from the hottest in Redis (warm start). */
  readonly warmStarted: number;
}

/** Data-cache numbers: totals, and per namespace. */
export interface DataCacheStats extends DataNamespaceStats {
  readonly namespaces: Readonly<Record<string, DataNamespaceStats>>;
}

/** What the dashboard needs from the data cache. */
export interface DataCacheSource {
  stats(): DataCacheStats;
}

/** Rate-limit numbers. */
export interface RateLimitStats {
  readonly allowed: number;
  readonly blocked: number;
  readonly storeErrors: number;
  readonly limits: ReadonlyArray<{ readonly name: string; readonly allowed: number; readonly blocked: number }>;
}

/** What the dashboard needs from the rate limiter. */
export interface RateLimitSource {
  stats(): RateLimitStats;
  resetKey(key: string): Promise<void>;
}

/** A breaker as the dashboard shows it. */
export interface BreakerSnapshot {
  readonly name: string;
  readonly state: 'closed' | 'open' | 'half-open';
  readonly failures: number;
  readonly successes: number;
  readonly rejected: number;
  readonly timeouts: number;
  readonly openedAt?: number;
  /** The adaptive concurrency limit guarding it, when `adaptiveConcurrency` is on. */
  readonly concurrency?: ConcurrencyLimitFigures;
}

/** An adaptive concurrency limit as the dashboard shows it. */
export interface ConcurrencyLimitFigures {
  /** The route key, or `global` for a limit shared by every route. */
  readonly name: string;
  /** Requests allowed in flight at once now. */
  readonly limit: number;
  readonly inflight: number;
  /** Requests shed at the limit so far (503 `OVERLOADED`). */
  readonly shed: number;
  /** The measured no-load latency in ms; `null` before the first sample. */
  readonly minRttMs: number | null;
  /** True while the no-load latency is being re-measured at the minimum limit. */
  readonly probing: boolean;
}

/** What the dashboard needs from the circuit breakers. */
export interface CircuitBreakerSource {
  snapshot(): { readonly breakers: readonly BreakerSnapshot[]; readonly overloaded: boolean; readonly shed: number };
  reset(name?: string): void;
}

/** An outbound client's origin as the dashboard shows it. */
export interface OutboundOriginFigures {
  readonly origin: string;
  /** Taking calls (in rotation, breaker not open). */
  readonly healthy: boolean;
  readonly pending: number;
  readonly state: 'closed' | 'open' | 'half-open';
}

/** An outbound HTTP client as the dashboard shows it. */
export interface OutboundClientFigures {
  readonly name: string;
  readonly origins: readonly OutboundOriginFigures[];
  readonly active: number;
  readonly queued: number;
  /** Retries ÷ calls over the retry budget's window, 0..1 (the retry-rate KPI; alert over 0.1). */
  readonly retryRate: number;
}

/** A worker-thread offload pool as the dashboard shows it. */
export interface OffloadPoolFigures {
  readonly pool: string;
  readonly threads: number;
  readonly running: number;
  /** Tasks waiting for a thread (the queue depth). */
  readonly queued: number;
  readonly maxQueue: number;
  /** Share of the pool's capacity used, 0..1. */
  readonly utilization: number;
  readonly waitP50Ms: number;
  readonly waitP99Ms: number;
  readonly runP50Ms: number;
  readonly runP99Ms: number;
  readonly completed: number;
  readonly shed: number;
}

/** What the dashboard needs about outbound work: HTTP clients and offload pools. */
export interface OutboundSource {
  snapshot(): {
    readonly clients: readonly OutboundClientFigures[];
    readonly pools: readonly OffloadPoolFigures[];
  };
}

/** What the dashboard needs from the size limiter. */
export interface SizeLimitSource {
  stats(): { readonly rejected: Readonly<Record<string, number>> };
}

/** Latency percentiles in milliseconds. */
export interface LatencySummary {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly mean: number;
  readonly max: number;
}

/** One rolling window (1, 5 or 15 minutes). */
export interface WindowStats {
  readonly windowSeconds: number;
  readonly requests: number;
  readonly rps: number;
  readonly errors: number;
  /** 5xx share of requests, 0..1. */
  readonly errorRate: number;
  readonly latency: LatencySummary;
  readonly cacheHits: number;
  readonly cacheMisses: number;
  /** hits / (hits + misses), 0..1; 0 when there were none. */
  readonly cacheHitRatio: number;
  /** Responses by status class, e.g. `{ '2xx': 10, '4xx': 1 }`. */
  readonly statusClasses: Readonly<Record<string, number>>;
}

/** One route in the per-route table (5-minute window). */
export interface RouteStats {
  readonly route: string;
  readonly method: string;
  readonly count: number;
  readonly rps: number;
  readonly errorRate: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly cacheHitRatio: number;
}

/** An alert raised by a rule on the rolling data. */
export interface Alert {
  readonly id: string;
  readonly rule: string;
  readonly severity: 'warning' | 'critical';
  /** ms since epoch when the condition started holding. */
  readonly since: number;
  readonly value: number;
  readonly threshold: number;
  readonly message: string;
  /** Plain words: which route, which layer, what to change. */
  readonly recommendation: string;
  readonly layer?: string;
  readonly route?: string;
}

/** Process figures sampled on a timer. */
export interface ProcessStats {
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  readonly heapLimitBytes: number;
  readonly eventLoopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number };
  /** CPU use of this process, percent of one core. */
  readonly cpuPercent: number;
  readonly uptimeSeconds: number;
}

/** What timing exposes to the dashboard. */
export interface TimingSnapshot {
  readonly at: number;
  readonly totalRequests: number;
  readonly inFlight: number;
  readonly windows: { readonly '1m': WindowStats; readonly '5m': WindowStats; readonly '15m': WindowStats };
  readonly routes: readonly RouteStats[];
  readonly process: ProcessStats;
  readonly alerts: readonly Alert[];
}

/** What the dashboard needs from timing. */
export interface TimingSource {
  snapshot(): TimingSnapshot;
}
