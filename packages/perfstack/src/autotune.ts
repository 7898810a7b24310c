/**
 * `autoTune`: the "detect → apply → validate" loop over `stack.settings`, opt-in.
 *
 * Every `interval` it looks at the figures since its last look and makes at most one change,
 * and only a safe, reversible one:
 *
 * - a ttl raise (×2, up to `maxTtl`) on a `cache()` route that has tags (writes invalidate it
 *   exactly, so a longer ttl stays correct) and whose hit ratio is under `hitRatioTarget`;
 * - a rate-limit raise (×1.5, up to `maxLimitFactor` × the configured limit) while the limiter
 *   refuses more than `blockedShareTarget` of requests and every route is healthy (error rate
 *   at most `maxErrorRate`, p99 at most `maxP99`).
 *
 * Then it watches the change for `window`: when a watched route's p99 grows by more than
 * `latencyTolerance` (and at least `minLatencyDelta`) or its error rate by more than
 * `errorTolerance`, it undoes the change (through the settings API: audited, fleet-wide).
 * Each decision (apply, keep, rollback) is kept in a bounded list the dashboard shows, and logged.
 * One change at a time; nothing else is ever touched.
 */
import {
  checkOptionsObject,
  durationText,
  type PerfstackLogger,
  parseDuration,
  type RouteStats,
  readInteger,
  readNumber,
  type SettingsAuditEntry,
  type TimingSource,
} from '@perfstack/core';
import type { StackSettings, TunableLayers } from './settings.js';

const PKG = 'perfstack';

/** Options of the `autoTune` preset option. Every one is optional. */
export interface AutoTuneOptions {
  /** Time between looks. @default '1m' */
  readonly interval?: number | string;
  /** How long a change is watched before it is kept. @default '5m' */
  readonly window?: number | string;
  /** A route's p99 may grow by this share before the change is rolled back. @default 0.2 */
  readonly latencyTolerance?: number;
  /** ...and by at least this much (ms), so noise on a fast route is not a regression. @default 5 */
  readonly minLatencyDelta?: number | string;
  /** A route's error rate may grow by this much (absolute, 0..1) before the change is rolled back. @default 0.01 */
  readonly errorTolerance?: number;
  /** A tagged cached route whose hit ratio is under this gets a ttl raise. @default 0.8 */
  readonly hitRatioTarget?: number;
  /** The limit is raised when it refuses more than this share of requests. @default 0.05 */
  readonly blockedShareTarget?: number;
  /** "Healthy" for a limit raise: every route's error rate at most this. @default 0.01 */
  readonly maxErrorRate?: number;
  /** "Healthy" for a limit raise: every route's p99 at most this. @default '500ms' */
  readonly maxP99?: number | string;
  /** Requests (or cache lookups) a route needs in a look before it is judged. @default 20 */
  readonly minRequests?: number;
  /** The longest ttl autoTune sets. @default '1h' */
  readonly maxTtl?: number | string;
  /** The highest limit autoTune sets, as a multiple of the configured one. @default 4 */
  readonly maxLimitFactor?: number;
  /** Time source (ms), for tests. @default Date.now */
  readonly now?: () => number;
}

/** One decision, as the dashboard shows it. */
export interface AutoTuneDecision {
  readonly at: number;
  readonly action: 'apply' | 'keep' | 'rollback';
  readonly path: string;
  readonly reason: string;
  /** The audit entry of the change (its undo's, for a rollback). */
  readonly entry: string;
}

/** The running loop: `stack.autoTune`. */
export interface AutoTune {
  readonly enabled: true;
  /** The decisions so far, oldest first (bounded). */
  decisions(): readonly AutoTuneDecision[];
  /** Looks now (the timer calls it every `interval`); resolves with the decision made, if any. */
  tick(): Promise<AutoTuneDecision | undefined>;
  /** Stops the timer (a change under watch is left as it is). */
  close(): void;
}

interface Config {
  readonly intervalMs: number;
  readonly windowMs: number;
  readonly latencyTolerance: number;
  readonly minLatencyDeltaMs: number;
  readonly errorTolerance: number;
  readonly hitRatioTarget: number;
  readonly blockedShareTarget: number;
  readonly maxErrorRate: number;
  readonly maxP99Ms: number;
  readonly minRequests: number;
  readonly maxTtlMs: number;
  readonly maxLimitFactor: number;
  readonly now: () => number;
}

const KEYS = [
  'interval',
  'window',
  'latencyTolerance',
  'minLatencyDelta',
  'errorTolerance',
  'hitRatioTarget',
  'blockedShareTarget',
  'maxErrorRate',
  'maxP99',
  'minRequests',
  'maxTtl',
  'maxLimitFactor',
  'now',
];
const MAX_DECISIONS = 100;

/**
 * Resolves `autoTune` (`true` or options); `undefined` when off.
 *
 * @throws {TypeError|RangeError} naming the option
 */
export function resolveAutoTune(value: AutoTuneOptions | boolean | undefined): Config | undefined {
  if (value === undefined || value === false) return undefined;
  const o = checkOptionsObject(PKG, 'performanceStack({ autoTune })', value === true ? {} : value, KEYS);
  const ms = (name: string, v: unknown, fallback: number) =>
    v === undefined ? fallback : parseDuration(v as number | string, `autoTune.${name}`, { pkg: PKG, min: 1 });
  const ratio = (name: string, v: unknown, fallback: number) => readNumber(PKG, `autoTune.${name}`, v, fallback, 0, 1);
  if (o.now !== undefined && typeof o.now !== 'function') {
    throw new TypeError(`${PKG}: option "autoTune.now" must be a function returning ms`);
  }
  return {
    intervalMs: ms('interval', o.interval, 60_000),
    windowMs: ms('window', o.window, 300_000),
    latencyTolerance: readNumber(PKG, 'autoTune.latencyTolerance', o.latencyTolerance, 0.2, 0, 100),
    minLatencyDeltaMs: ms('minLatencyDelta', o.minLatencyDelta, 5),
    errorTolerance: ratio('errorTolerance', o.errorTolerance, 0.01),
    hitRatioTarget: ratio('hitRatioTarget', o.hitRatioTarget, 0.8),
    blockedShareTarget: ratio('blockedShareTarget', o.blockedShareTarget, 0.05),
    maxErrorRate: ratio('maxErrorRate', o.maxErrorRate, 0.01),
    maxP99Ms: ms('maxP99', o.maxP99, 500),
    minRequests: readInteger(PKG, 'autoTune.minRequests', o.minRequests, 20, 1),
    maxTtlMs: ms('maxTtl', o.maxTtl, 3_600_000),
    maxLimitFactor: readNumber(PKG, 'autoTune.maxLimitFactor', o.maxLimitFactor, 4, 1, 1000),
    now: (o.now as (() => number) | undefined) ?? Date.now,
  };
}

/** A change under watch. */
interface Watch {
  readonly entry: SettingsAuditEntry;
  readonly path: string;
  readonly until: number;
  /** p99 and error rate per watched route when the change was made. */
  readonly baseline: ReadonlyMap<string, { readonly p99: number; readonly errorRate: number }>;
}

const routeKey = (r: RouteStats) => `${r.method} ${r.route}`;

/**
 * Starts the loop.
 *
 * @param config what {@link resolveAutoTune} returned
 * @param settings the stack's settings (changes go through it: validated, audited, fleet-wide)
 * @param layers the layers whose figures it reads
 * @param timing the per-route latency and error figures
 */
export function startAutoTune(
  config: Config,
  settings: StackSettings,
  layers: TunableLayers,
  timing: TimingSource | undefined,
  log: PerfstackLogger,
): AutoTune {
  const decisions: AutoTuneDecision[] = [];
  let watch: Watch | undefined;
  let running: Promise<AutoTuneDecision | undefined> | undefined;
  /** Cumulative counters at the last look, for per-look deltas. */
  let lastCache = new Map<string, { hits: number; misses: number }>();
  let lastLimit = { allowed: 0, blocked: 0 };

  const routes = (): RouteStats[] => {
    try {
      return [...(timing?.snapshot().routes ?? [])].filter((r) => r.count >= config.minRequests);
    } catch {
      return [];
    }
  };

  const decide = (d: Omit<AutoTuneDecision, 'at'>): AutoTuneDecision => {
    const decision = { at: config.now(), ...d };
    decisions.push(decision);
    if (decisions.length > MAX_DECISIONS) decisions.shift();
    const pino = layers.logger?.logger;
    const line = { event: 'autoTune', ...decision };
    if (pino !== undefined) pino.info(line, `autoTune ${decision.action}`);
    else log.warn(`perfstack autoTune ${decision.action}`, line);
    return decision;
  };

  /** The watched change: rolled back on a regression, kept once its window is over. */
  const validate = async (w: Watch): Promise<AutoTuneDecision | undefined> => {
    for (const r of routes()) {
      const base = w.baseline.get(routeKey(r));
      if (base === undefined) continue;
      const slower = r.p99 > base.p99 * (1 + config.latencyTolerance) && r.p99 - base.p99 >= config.minLatencyDeltaMs;
      const failing = r.errorRate > base.errorRate + config.errorTolerance;
      if (slower || failing) {
        watch = undefined;
        const why = slower
          ? `${routeKey(r)} p99 ${r.p99.toFixed(1)} ms against ${base.p99.toFixed(1)} ms before the change`
          : `${routeKey(r)} error rate ${(r.errorRate * 100).toFixed(2)}% against ${(base.errorRate * 100).toFixed(2)}% before the change`;
        const undo = await settings.undo(w.entry.id, { actor: 'autoTune', reason: `rollback: ${why}` });
        return decide({ action: 'rollback', path: w.path, reason: why, entry: undo.id });
      }
    }
    if (config.now() < w.until) return undefined;
    watch = undefined;
    return decide({
      action: 'keep',
      path: w.path,
      reason: `no route worsened within ${durationText(config.windowMs)}`,
      entry: w.entry.id,
    });
  };

  /** The change to try, if any: a tagged route's ttl first, then the limit. */
  const candidate = (
    current: RouteStats[],
  ): { path: string; to: number; reason: string; watched: RouteStats[] } | undefined => {
    const cache = layers.cache;
    if (cache !== undefined) {
      const stats = cache.stats().routes;
      const seen = new Map<string, { hits: number; misses: number }>();
      let pick: { path: string; to: number; reason: string; watched: RouteStats[] } | undefined;
      for (const [route, cached] of cache.cachedRoutes()) {
        const s = stats[route];
        if (s === undefined) continue;
        seen.set(route, { hits: s.hits, misses: s.misses });
        const before = lastCache.get(route) ?? { hits: 0, misses: 0 };
        const hits = s.hits - before.hits;
        const lookups = hits + (s.misses - before.misses);
        if (pick !== undefined || !cached.tags || lookups < config.minRequests) continue;
        if (hits / lookups >= config.hitRatioTarget) continue;
        const ttl = cache.ttlOf(route);
        const to = Math.min(config.maxTtlMs, ttl * 2);
        if (to <= ttl) continue;
        pick = {
          path: `cache.routes.${route}.ttl`,
          to,
          reason: `hit ratio ${((hits / lookups) * 100).toFixed(1)}% over ${lookups} lookups on a tagged route: ttl ${durationText(ttl)} → ${durationText(to)}`,
          watched: current.filter((r) => r.route === route),
        };
      }
      lastCache = seen;
      if (pick !== undefined) return pick;
    }
    const limiter = layers.rateLimit;
    const own = limiter?.tunables();
    if (limiter !== undefined && own !== undefined && own.length === 1) {
      const stats = limiter.stats();
      const allowed = stats.allowed - lastLimit.allowed;
      const blocked = stats.blocked - lastLimit.blocked;
      lastLimit = { allowed: stats.allowed, blocked: stats.blocked };
      const total = allowed + blocked;
      if (total < config.minRequests || blocked / total <= config.blockedShareTarget) return undefined;
      const sick = current.find((r) => r.errorRate > config.maxErrorRate || r.p99 > config.maxP99Ms);
      if (sick !== undefined) return undefined;
      const configured = settings.list().find((s) => s.path === 'rateLimit.limit')?.configured;
      const limit = (own[0] as { limit: number }).limit;
      const ceiling = Math.floor((typeof configured === 'number' ? configured : limit) * config.maxLimitFactor);
      const to = Math.min(ceiling, Math.ceil(limit * 1.5));
      if (to <= limit) return undefined;
      return {
        path: 'rateLimit.limit',
        to,
        reason: `the limit refused ${((blocked / total) * 100).toFixed(1)}% of ${total} requests while every route is healthy: ${limit} → ${to}`,
        watched: current,
      };
    }
    return undefined;
  };

  const look = async (): Promise<AutoTuneDecision | undefined> => {
    if (watch !== undefined) return validate(watch);
    const current = routes();
    const change = candidate(current);
    if (change === undefined) return undefined;
    const entry = await settings.set({ [change.path]: change.to }, { actor: 'autoTune', reason: change.reason });
    watch = {
      entry,
      path: change.path,
      until: config.now() + config.windowMs,
      baseline: new Map(change.watched.map((r) => [routeKey(r), { p99: r.p99, errorRate: r.errorRate }])),
    };
    return decide({ action: 'apply', path: change.path, reason: change.reason, entry: entry.id });
  };

  const tick = (): Promise<AutoTuneDecision | undefined> => {
    // One look at a time: a slow look (a fleet publication) never overlaps the next.
    running ??= look()
      .catch((error: unknown) => {
        log.error('perfstack autoTune: a look failed', {
          error: error instanceof Error ? error.message : String(error),
        });
        return undefined;
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  const timer = setInterval(() => void tick(), config.intervalMs);
  timer.unref();
  return {
    enabled: true,
    decisions: () => [...decisions],
    tick,
    close: () => clearInterval(timer),
  };
}
