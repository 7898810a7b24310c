/**
 * The dashboard's history, kept on the server so a page opened now starts with the last
 * 15 minutes (and 24 hours at a coarser step) instead of empty charts, and — with Redis — so
 * the fleet's last 24 hours survive an instance restart.
 *
 * Two tiers, both ring buffers of fixed size (memory is bounded by their lengths, never by
 * traffic): a **fine** point every `fineStep` (10 s, 90 points = 15 minutes) and a **coarse**
 * point every `coarseStep` (5 min, 288 points = 24 hours) folded from the fine points of its
 * interval (means of rates and ratios, maxima of latency, breakers, event-loop delay and
 * memory). About 380 points of 14 numbers: well under 100 kB.
 *
 * With Redis, each coarse point is also written once for the fleet under
 * `<prefix>dashboard:history:<interval start>` (`SET NX`, expiring after the coarse span):
 * the first instance to close an interval writes it, with the fleet's totals when it has the
 * fleet view. A starting instance reads the last span's keys with one `MGET` and starts with
 * them. Redis being slow or down never blocks a snapshot: the write and the read are
 * fire-and-forget with their failures logged once.
 */
import type { OnceLogger, SharedRedis } from '@perfstack/core';
import type { DashboardSnapshot } from './snapshot.js';

/** One point of every chart, as `GET /api/history` returns it. */
export interface HistoryPoint {
  /** Start of the point's interval (ms since the epoch). */
  readonly at: number;
  readonly rps: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly errorRate: number;
  /** `null` when the cache saw no cacheable lookups in the interval. */
  readonly hitRatio: number | null;
  readonly blockedPerSecond: number;
  readonly open: number;
  readonly halfOpen: number;
  readonly loopP50: number;
  readonly loopP99: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
}

/** `GET /api/history`. */
export interface HistoryReport {
  readonly fine: HistoryTier;
  readonly coarse: HistoryTier;
}

/** One tier: its step, how many points it keeps, and the points, oldest first. */
export interface HistoryTier {
  readonly stepMs: number;
  readonly capacity: number;
  readonly points: readonly HistoryPoint[];
}

/** Resolved `history` options. */
export interface HistoryConfig {
  readonly fineStep: number;
  readonly finePoints: number;
  readonly coarseStep: number;
  readonly coarsePoints: number;
}

export const DEFAULT_HISTORY: HistoryConfig = Object.freeze({
  fineStep: 10_000,
  finePoints: 90,
  coarseStep: 300_000,
  coarsePoints: 288,
});

const KEY = 'dashboard:history:';

/** A bounded ring of points, oldest first when read. */
class Ring {
  readonly #items: HistoryPoint[] = [];
  readonly #max: number;
  constructor(max: number) {
    this.#max = max;
  }
  push(point: HistoryPoint): void {
    this.#items.push(point);
    if (this.#items.length > this.#max) this.#items.shift();
  }
  /** Adds points read elsewhere (Redis), keeping time order and one point per interval. */
  merge(points: readonly HistoryPoint[]): void {
    const byAt = new Map(this.#items.map((p) => [p.at, p]));
    for (const p of points) if (!byAt.has(p.at)) byAt.set(p.at, p);
    const sorted = [...byAt.values()].sort((a, b) => a.at - b.at);
    this.#items.length = 0;
    this.#items.push(...sorted.slice(-this.#max));
  }
  get points(): readonly HistoryPoint[] {
    return [...this.#items];
  }
}

const mean = (values: readonly number[]) =>
  values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
const max = (values: readonly number[]) => (values.length === 0 ? 0 : Math.max(...values));

/** Folds the fine points of one coarse interval into one point starting at `at`. */
export function foldPoints(at: number, points: readonly HistoryPoint[]): HistoryPoint {
  const ratios = points.map((p) => p.hitRatio).filter((r): r is number => r !== null);
  return {
    at,
    rps: mean(points.map((p) => p.rps)),
    p50: max(points.map((p) => p.p50)),
    p95: max(points.map((p) => p.p95)),
    p99: max(points.map((p) => p.p99)),
    errorRate: mean(points.map((p) => p.errorRate)),
    hitRatio: ratios.length === 0 ? null : mean(ratios),
    blockedPerSecond: mean(points.map((p) => p.blockedPerSecond)),
    open: max(points.map((p) => p.open)),
    halfOpen: max(points.map((p) => p.halfOpen)),
    loopP50: max(points.map((p) => p.loopP50)),
    loopP99: max(points.map((p) => p.loopP99)),
    rssBytes: max(points.map((p) => p.rssBytes)),
    heapUsedBytes: max(points.map((p) => p.heapUsedBytes)),
  };
}

/** A point is what a parsed Redis value must look like: every field a finite number. */
function isPoint(value: unknown): value is HistoryPoint {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(DEFAULT_POINT)) {
    const field = v[key];
    if (key === 'hitRatio' ? field !== null && !Number.isFinite(field) : !Number.isFinite(field)) return false;
  }
  return true;
}

const DEFAULT_POINT: HistoryPoint = {
  at: 0,
  rps: 0,
  p50: 0,
  p95: 0,
  p99: 0,
  errorRate: 0,
  hitRatio: null,
  blockedPerSecond: 0,
  open: 0,
  halfOpen: 0,
  loopP50: 0,
  loopP99: 0,
  rssBytes: 0,
  heapUsedBytes: 0,
};

export class History {
  readonly #config: HistoryConfig;
  readonly #snapshot: () => DashboardSnapshot;
  readonly #now: () => number;
  readonly #redis: SharedRedis | undefined;
  readonly #log: OnceLogger;
  readonly #fine: Ring;
  readonly #coarse: Ring;
  /** Fine points of the coarse interval in progress. */
  #pending: HistoryPoint[] = [];
  #pendingStart = -1;
  #previous: { at: number; blocked: number } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #loaded: Promise<void> = Promise.resolve();

  constructor(options: {
    config: HistoryConfig;
    snapshot: () => DashboardSnapshot;
    now: () => number;
    redis: SharedRedis | undefined;
    log: OnceLogger;
  }) {
    this.#config = options.config;
    this.#snapshot = options.snapshot;
    this.#now = options.now;
    this.#redis = options.redis;
    this.#log = options.log;
    this.#fine = new Ring(this.#config.finePoints);
    this.#coarse = new Ring(this.#config.coarsePoints);
  }

  /** Starts sampling (and, with Redis, loads the fleet's last span). */
  start(): void {
    this.#loaded = this.#load();
    this.#timer = setInterval(() => this.sample(), this.#config.fineStep);
    this.#timer.unref();
  }

  /** Resolves once the Redis load (if any) has finished, for tests and warm starts. */
  get loaded(): Promise<void> {
    return this.#loaded;
  }

  /** Takes one fine point now (the timer calls it every `fineStep`). */
  sample(): void {
    const s = this.#snapshot();
    const now = this.#now();
    const point = this.#pointOf(s, now);
    this.#fine.push(point);
    const { coarseStep } = this.#config;
    const start = now - (now % coarseStep);
    if (this.#pendingStart !== start) {
      if (this.#pendingStart >= 0 && this.#pending.length > 0) this.#closeCoarse(this.#pendingStart, this.#pending);
      this.#pending = [];
      this.#pendingStart = start;
    }
    this.#pending.push(point);
  }

  report(): HistoryReport {
    return {
      fine: { stepMs: this.#config.fineStep, capacity: this.#config.finePoints, points: this.#fine.points },
      coarse: { stepMs: this.#config.coarseStep, capacity: this.#config.coarsePoints, points: this.#coarse.points },
    };
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #pointOf(s: DashboardSnapshot, now: number): HistoryPoint {
    // The fleet's totals when there is a fleet view, else this instance.
    const totals = s.fleet?.totals;
    const blocked = s.rateLimit?.blocked ?? 0;
    let blockedPerSecond = 0;
    if (this.#previous !== undefined && now > this.#previous.at) {
      blockedPerSecond = Math.max(0, blocked - this.#previous.blocked) / ((now - this.#previous.at) / 1000);
    }
    this.#previous = { at: now, blocked };
    const lookups = s.cache === null ? 0 : s.cache.hits + s.cache.misses;
    return {
      at: now - (now % this.#config.fineStep),
      rps: totals?.requests.rps ?? s.requests.rps,
      p50: s.latency.p50,
      p95: s.latency.p95,
      p99: s.latency.p99,
      errorRate: totals?.requests.errorRate ?? s.requests.errorRate,
      hitRatio: s.cache === null || lookups === 0 ? null : s.cache.hitRatio,
      blockedPerSecond,
      open: s.breakers?.open ?? 0,
      halfOpen: s.breakers?.halfOpen ?? 0,
      loopP50: s.process.eventLoopDelayMs.p50,
      loopP99: s.process.eventLoopDelayMs.p99,
      rssBytes: s.process.rssBytes,
      heapUsedBytes: s.process.heapUsedBytes,
    };
  }

  #closeCoarse(start: number, points: readonly HistoryPoint[]): void {
    const point = foldPoints(start, points);
    this.#coarse.push(point);
    const redis = this.#redis;
    if (redis === undefined || !redis.isUp) return;
    const key = `${redis.keyPrefix}${KEY}${start}`;
    const span = this.#config.coarseStep * this.#config.coarsePoints;
    redis
      .run((c) => c.set(key, JSON.stringify(point), { condition: 'NX', expiration: { type: 'PX', value: span } }))
      .then(
        () => this.#log.reset('DASHBOARD_HISTORY_WRITE'),
        (error: unknown) =>
          this.#log.warnOnce('DASHBOARD_HISTORY_WRITE', 'could not write a history point to Redis', {
            error: String(error),
          }),
      );
  }

  async #load(): Promise<void> {
    const redis = this.#redis;
    if (redis === undefined) return;
    const { coarseStep, coarsePoints } = this.#config;
    const now = this.#now();
    const last = now - (now % coarseStep) - coarseStep;
    const keys: string[] = [];
    for (let i = coarsePoints - 1; i >= 0; i--) keys.push(`${redis.keyPrefix}${KEY}${last - i * coarseStep}`);
    try {
      if (!redis.isUp) await redis.connect();
      const values = await redis.run((c) => c.mGet(keys));
      const points: HistoryPoint[] = [];
      for (const value of values) {
        if (typeof value !== 'string') continue;
        try {
          const parsed: unknown = JSON.parse(value);
          if (isPoint(parsed)) points.push(parsed);
        } catch {
          // Not ours: skipped.
        }
      }
      this.#coarse.merge(points);
    } catch (error) {
      this.#log.warnOnce('DASHBOARD_HISTORY_READ', "could not read the fleet's history from Redis", {
        error: String(error),
      });
    }
  }
}
