/**
 * The performance report (`GET /api/report`): an overall score out of 100 and a grade,
 * computed by fixed, documented rules (README, "Report rules") from the rolling data the
 * dashboard already reads through core's contracts, plus recommendations ranked by the
 * score points they would win back.
 */
import type { Alert, CacheStats, WindowStats } from '@perfstack/core';
import type { DashboardSnapshot } from './snapshot.js';

/** The report's settings (`report` option). */
export interface ReportConfig {
  readonly latencyTargetMs: number;
  readonly errorRateTarget: number;
  readonly cacheHitTarget: number;
  readonly blockedShareTarget: number;
  readonly eventLoopDelayTargetMs: number;
  readonly heapShareTarget: number;
  readonly minRequests: number;
}

/** One rule's result. `points` is `null` when the rule did not apply (no data): it then weighs nothing. */
export interface RuleResult {
  readonly name: string;
  readonly weight: number;
  readonly points: number | null;
  readonly explanation: string;
}

/** One recommendation. */
export interface Recommendation {
  /** The layer to change: `app`, `cache`, `rate-limit`, `circuit-breaker`, `process`. */
  readonly layer: string;
  /** The route (pattern), limit or breaker name; `null` for the whole process. */
  readonly route: string | null;
  readonly finding: string;
  readonly action: string;
  /** In words: the score points and the figure it would improve. */
  readonly expectedGain: string;
  /** Score points this would win back at most (the ranking key). */
  readonly impact: number;
  readonly rule: string;
  /** The concrete setting change it maps to, when the dashboard has runtime settings (settings.ts). */
  readonly change?: {
    readonly path: string;
    readonly from: number | string | null;
    readonly to: number | string | null;
    readonly text: string;
  };
}

/** `GET /api/report`. */
export interface PerformanceReport {
  readonly version: 1;
  readonly score: number;
  readonly grade: 'A' | 'B' | 'C' | 'D' | 'F';
  readonly generatedAt: string;
  readonly inputs: ReportInputs;
  readonly rules: readonly RuleResult[];
  readonly recommendations: readonly Recommendation[];
}

/** The figures the rules used. */
export interface ReportInputs {
  /**
   * The timing window the latency and error rules read: `'1m'`, or `'5m'` when the last minute
   * has fewer than `minRequests`; when both have fewer, the latest one with any request (then
   * only a rule already over its target is scored).
   */
  readonly window: '1m' | '5m' | null;
  readonly requests: number;
  readonly rps: number;
  readonly latencyP95Ms: number;
  readonly latencyP99Ms: number;
  readonly latencyTargetMs: number;
  readonly errorRate: number;
  readonly cache: { readonly hits: number; readonly misses: number; readonly hitRatio: number } | null;
  /** The data cache (`stack.data`): totals and hit ratio per namespace. */
  readonly data: {
    readonly hits: number;
    readonly misses: number;
    readonly hitRatio: number;
    readonly refreshesAhead: number;
    readonly warmStarted: number;
    readonly namespaces: Readonly<Record<string, { readonly hitRatio: number }>>;
  } | null;
  readonly rateLimit: { readonly allowed: number; readonly blocked: number; readonly blockedShare: number } | null;
  readonly breakers: {
    readonly total: number;
    readonly open: number;
    readonly halfOpen: number;
    readonly overloaded: boolean;
  } | null;
  readonly eventLoopDelayP99Ms: number;
  readonly heapUsedBytes: number;
  readonly heapLimitBytes: number;
  readonly heapShare: number;
  readonly leakAlerts: number;
}

/** The rules' weights (sum 100). */
export const RULE_WEIGHTS = {
  latency: 25,
  errors: 20,
  cache: 15,
  rateLimit: 10,
  breakers: 10,
  eventLoop: 10,
  memory: 10,
} as const;

/** Routes with fewer requests in the 5-minute table are not singled out. */
const MIN_ROUTE_REQUESTS = 5;

/**
 * The highest score while a scored rule has no points left: a rule that fails outright (an
 * open breaker, a 5xx rate at 5× its target, a blocked loop) never leaves the grade at A.
 */
export const FAILED_RULE_SCORE_CAP = 89;

const clamp01 = (v: number) => Math.min(1, Math.max(0, v));
const r2 = (v: number) => Math.round(v * 100) / 100;
const pct = (v: number) => `${(v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0)}%`;
const msText = (v: number) => `${Math.round(v)} ms`;
const mb = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MB`;
const num = (v: number) => Math.round(v).toLocaleString('en-US');
const ttlText = (ms: number) => (ms % 60_000 === 0 ? `${ms / 60_000}m` : ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`);

/** The grade of a score: A ≥ 90, B ≥ 80, C ≥ 70, D ≥ 60, F below. */
export function gradeOf(score: number): PerformanceReport['grade'] {
  return score >= 90 ? 'A' : score >= 80 ? 'B' : score >= 70 ? 'C' : score >= 60 ? 'D' : 'F';
}

/** A cache route's ttl, when the cache's stats carry one (`ttlMs` or `ttl` in ms). */
function ttlOf(entry: object): number | undefined {
  const e = entry as { ttlMs?: unknown; ttl?: unknown };
  const ttl = typeof e.ttlMs === 'number' ? e.ttlMs : typeof e.ttl === 'number' ? e.ttl : undefined;
  return ttl !== undefined && Number.isFinite(ttl) && ttl > 0 ? ttl : undefined;
}

/** Splits `lost` points over items in proportion to their weights. */
function share(lost: number, weight: number, total: number): number {
  return total > 0 ? r2((lost * weight) / total) : 0;
}

/** What every rule reads, and where it writes. */
interface RuleContext {
  readonly snapshot: DashboardSnapshot;
  readonly cacheRoutes: CacheStats['routes'] | null;
  readonly leakAlerts: readonly Alert[];
  readonly config: ReportConfig;
  /** The timing window the latency and error rules read, or `null` when it had no request. */
  readonly window: '1m' | '5m' | null;
  readonly stats: WindowStats | null;
  /** True when that window has at least `minRequests` requests (else only failing rules score). */
  readonly enough: boolean;
  readonly rules: RuleResult[];
  readonly recs: Recommendation[];
}

/**
 * Builds the report.
 *
 * @param snapshot the dashboard snapshot (timing, cache, rate limit, breakers, process, alerts)
 * @param cacheRoutes the cache's per-route stats (`CacheSource.stats().routes`), or `null`
 * @param leakAlerts the leak watch's current alerts
 * @param config targets and thresholds
 * @param now the clock
 * @returns the report, recommendations ranked by the points they would win back
 */
export function buildReport(
  snapshot: DashboardSnapshot,
  cacheRoutes: CacheStats['routes'] | null,
  leakAlerts: readonly Alert[],
  config: ReportConfig,
  now: number,
): PerformanceReport {
  const w = snapshot.windows;
  const quiet = (n: number) => n < config.minRequests;
  const enough = w !== null && (!quiet(w['1m'].requests) || !quiet(w['5m'].requests));
  // Too quiet for a verdict either way: the latest window with requests still shows a failure.
  const window =
    w === null
      ? null
      : !quiet(w['1m'].requests)
        ? '1m'
        : !quiet(w['5m'].requests)
          ? '5m'
          : w['1m'].requests > 0
            ? '1m'
            : w['5m'].requests > 0
              ? '5m'
              : null;
  const stats = window === null || w === null ? null : w[window];
  const c: RuleContext = { snapshot, cacheRoutes, leakAlerts, config, window, stats, enough, rules: [], recs: [] };
  for (const rule of [latencyRule, errorsRule, cacheRule, rateLimitRule, breakersRule, eventLoopRule, memoryRule])
    rule(c);
  retryRecommendations(c);
  const scored = c.rules.filter((r) => r.points !== null);
  const weight = scored.reduce((sum, r) => sum + r.weight, 0);
  const points = scored.reduce((sum, r) => sum + (r.points ?? 0), 0);
  const raw = weight > 0 ? Math.round((100 * points) / weight) : 100;
  const failed = scored.some((r) => r.points === 0);
  const score = failed ? Math.min(raw, FAILED_RULE_SCORE_CAP) : raw;
  // A recommendation that wins nothing back is noise (the retry-rate ones are not scored by design).
  const recs = c.recs.filter((r) => r.impact > 0 || r.rule === 'retry-rate');
  recs.sort((a, b) => b.impact - a.impact);
  return {
    version: 1,
    score,
    grade: gradeOf(score),
    generatedAt: new Date(now).toISOString(),
    inputs: inputsOf(c),
    rules: c.rules,
    recommendations: recs,
  };
}

/** The data cache's figures for the report's `inputs`. */
function dataInputs(data: DashboardSnapshot['data']): ReportInputs['data'] {
  if (data === null) return null;
  const namespaces: [string, { hitRatio: number }][] = [];
  for (const [name, n] of Object.entries(data.namespaces)) namespaces.push([name, { hitRatio: n.hitRatio }]);
  return {
    hits: data.hits,
    misses: data.misses,
    hitRatio: data.hitRatio,
    refreshesAhead: data.refreshesAhead,
    warmStarted: data.warmStarted,
    namespaces: Object.fromEntries(namespaces),
  };
}

/** The figures the rules used, for the report's `inputs`. */
function inputsOf(c: RuleContext): ReportInputs {
  const { snapshot, stats, config } = c;
  const cache = snapshot.cache;
  const rl = snapshot.rateLimit;
  const decided = rl === null ? 0 : rl.allowed + rl.blocked;
  const br = snapshot.breakers;
  const p = snapshot.process;
  const ratio = (v: number) => Math.round(v * 10_000) / 10_000;
  return {
    window: c.window,
    requests: stats?.requests ?? 0,
    rps: r2(stats?.rps ?? 0),
    latencyP95Ms: stats?.latency.p95 ?? 0,
    latencyP99Ms: stats?.latency.p99 ?? 0,
    latencyTargetMs: config.latencyTargetMs,
    errorRate: stats?.errorRate ?? 0,
    cache: cache === null ? null : { hits: cache.hits, misses: cache.misses, hitRatio: cache.hitRatio },
    data: dataInputs(snapshot.data),
    rateLimit:
      rl === null
        ? null
        : { allowed: rl.allowed, blocked: rl.blocked, blockedShare: decided > 0 ? ratio(rl.blocked / decided) : 0 },
    breakers:
      br === null ? null : { total: br.list.length, open: br.open, halfOpen: br.halfOpen, overloaded: br.overloaded },
    eventLoopDelayP99Ms: p.eventLoopDelayMs.p99,
    heapUsedBytes: p.heapUsedBytes,
    heapLimitBytes: p.heapLimitBytes,
    heapShare: p.heapLimitBytes > 0 ? ratio(p.heapUsedBytes / p.heapLimitBytes) : 0,
    leakAlerts: c.leakAlerts.length,
  };
}

/** latency: full at p95 ≤ target, none at p95 ≥ 4 × target, linear between. */
function latencyRule(c: RuleContext): void {
  const { snapshot, config, stats, window, rules, recs } = c;
  const T = config.latencyTargetMs;
  if (stats === null || !c.enough) {
    rules.push({
      name: 'latency',
      weight: RULE_WEIGHTS.latency,
      points: null,
      explanation: `Fewer than ${config.minRequests} requests in the last 5 minutes (or no timing source): not scored.`,
    });
  } else {
    const p95 = stats.latency.p95;
    const points = r2(RULE_WEIGHTS.latency * clamp01((4 * T - p95) / (3 * T)));
    rules.push({
      name: 'latency',
      weight: RULE_WEIGHTS.latency,
      points,
      explanation: `p95 ${msText(p95)} over the last ${window} against a ${msText(T)} target: full points at or under the target, none at 4× (${msText(4 * T)}).`,
    });
    const lost = RULE_WEIGHTS.latency - points;
    const slow = snapshot.routes.filter((r) => r.count >= MIN_ROUTE_REQUESTS && r.p95 > T);
    const excess = slow.reduce((sum, r) => sum + r.count * (r.p95 - T), 0);
    for (const r of slow) {
      const cacheable = r.method === 'GET' && r.cacheHitRatio < 0.5;
      const impact = lost > 0 ? share(lost, r.count * (r.p95 - T), excess) : 0;
      recs.push({
        rule: 'latency',
        layer: cacheable ? 'cache' : 'app',
        route: `${r.method} ${r.route}`,
        finding: `\`${r.route}\` p95 ${msText(r.p95)} against the ${msText(T)} target (${num(r.count)} requests in 5 min, cache hit ratio ${pct(r.cacheHitRatio)})`,
        action: cacheable
          ? 'Serve it from the cache: add cache({ ttl, tags }) to the route or raise its ttl, invalidating by tag on writes; then record a CPU profile under load to see what the misses spend their time on.'
          : 'Record a CPU profile (Profiling → CPU) while the route is under load and fix the top self-time functions; time spent waiting on a database or API shows as idle, so also check the calls the route makes.',
        expectedGain: `up to +${impact} points; p95 −${msText(r.p95 - T)} per request on ~${r2(r.rps)} req/s`,
        impact,
      });
    }
    if (slow.length === 0 && p95 > T) {
      recs.push({
        rule: 'latency',
        layer: 'app',
        route: null,
        finding: `p95 ${msText(p95)} against the ${msText(T)} target`,
        action: 'Record a CPU profile under load (Profiling → CPU) and fix the top self-time functions.',
        expectedGain: `up to +${r2(lost)} points`,
        impact: r2(lost),
      });
    }
  }
}

/** errors: loses all points at 5 × the target error rate. */
function errorsRule(c: RuleContext): void {
  const { snapshot, config, stats, window, rules, recs } = c;
  const E = config.errorRateTarget;
  // Fewer than minRequests: too few to award the points, enough to take them (a failure is a
  // failure, and the page shows the same rate).
  if (stats === null || (!c.enough && stats.errorRate <= E)) {
    rules.push({
      name: 'errors',
      weight: RULE_WEIGHTS.errors,
      points: null,
      explanation:
        stats === null
          ? 'No requests (or no timing source): not scored.'
          : `Only ${num(stats.requests)} requests, 5xx rate ${pct(stats.errorRate)} within the ${pct(E)} target: not scored until ${config.minRequests}.`,
    });
  } else {
    const rate = stats.errorRate;
    const points = r2(RULE_WEIGHTS.errors * clamp01(1 - rate / (5 * E)));
    rules.push({
      name: 'errors',
      weight: RULE_WEIGHTS.errors,
      points,
      explanation: `5xx rate ${pct(rate)} over the last ${window}${c.enough ? '' : ` (only ${num(stats.requests)} requests: scored because it is over the target)`}; the rule loses its points linearly up to 5× the ${pct(E)} target.`,
    });
    const lost = RULE_WEIGHTS.errors - points;
    const failing = snapshot.routes.filter((r) => r.count >= MIN_ROUTE_REQUESTS && r.errorRate > E);
    const total = failing.reduce((sum, r) => sum + r.count * r.errorRate, 0);
    const breakerNames = new Set(snapshot.breakers?.list.map((b) => b.name) ?? []);
    for (const r of failing) {
      const name = `${r.method} ${r.route}`;
      const impact = lost > 0 ? share(lost, r.count * r.errorRate, total) : 0;
      recs.push({
        rule: 'errors',
        layer: 'app',
        route: name,
        finding: `\`${r.route}\` answers ${pct(r.errorRate)} 5xx (${num(r.count * r.errorRate)} of ${num(r.count)} in 5 min)`,
        action: breakerNames.has(name)
          ? 'Find the failure in the access log (by request id) and fix it; the breaker already guards the route — allow stale-if-error on it so the cache can answer while it is open.'
          : 'Find the failure in the access log (by request id) and fix it; if a dependency fails, guard the route with a circuit breaker and allow stale-if-error so the cache answers meanwhile.',
        expectedGain: `up to +${impact} points; ${pct(r.errorRate)} fewer failed requests on this route`,
        impact,
      });
    }
    if (failing.length === 0 && lost > 0) {
      recs.push({
        rule: 'errors',
        layer: 'app',
        route: null,
        finding: `5xx rate ${pct(rate)} against the ${pct(E)} target`,
        action:
          'Find the failures in the access log (by request id): no single route has enough requests to single out.',
        expectedGain: `up to +${r2(lost)} points`,
        impact: r2(lost),
      });
    }
  }
}

/** cache: full at hit ratio ≥ target, proportional below (totals since start). */
function cacheRule(c: RuleContext): void {
  const { snapshot, config, cacheRoutes, rules, recs } = c;
  const cache = snapshot.cache;
  const lookups = cache === null ? 0 : cache.hits + cache.misses + cache.stale;
  if (cache === null || lookups < config.minRequests) {
    rules.push({
      name: 'cache',
      weight: RULE_WEIGHTS.cache,
      points: null,
      explanation:
        cache === null ? 'No cache layer: not scored.' : `Fewer than ${config.minRequests} cache lookups: not scored.`,
    });
  } else {
    const points = r2(RULE_WEIGHTS.cache * clamp01(cache.hitRatio / config.cacheHitTarget));
    rules.push({
      name: 'cache',
      weight: RULE_WEIGHTS.cache,
      points,
      explanation: `Hit ratio ${pct(cache.hitRatio)} of ${num(lookups)} lookups since start, against a ${pct(config.cacheHitTarget)} target (points in proportion below it).`,
    });
    const lost = RULE_WEIGHTS.cache - points;
    const routes = Object.entries(cacheRoutes ?? {})
      .map(([route, s]) => ({ route, s, lookups: s.hits + s.misses + s.stale }))
      .filter((r) => r.lookups >= config.minRequests && r.s.hitRatio < config.cacheHitTarget);
    const misses = routes.reduce((sum, r) => sum + r.s.misses, 0);
    for (const r of routes) {
      const ttl = ttlOf(r.s);
      const impact = lost > 0 ? share(lost, r.s.misses, misses) : 0;
      recs.push({
        rule: 'cache',
        layer: 'cache',
        route: r.route,
        finding: `\`${r.route}\` cache hit ratio ${pct(r.s.hitRatio)}${ttl === undefined ? '' : ` with ttl ${ttlText(ttl)}`} (${num(r.s.misses)} misses in ${num(r.lookups)} lookups)`,
        action:
          ttl === undefined
            ? 'Raise ttl or add tags: with tags, writes invalidate exactly what changed, so a long ttl stays correct. Also check the key: a Vary on a per-user header or query-string noise splits one page into many entries.'
            : `Raise ttl (now ${ttlText(ttl)}) or add tags: with tags, writes invalidate exactly what changed, so a long ttl stays correct.`,
        expectedGain: `up to +${impact} points; each extra hit skips the handler entirely`,
        impact,
      });
    }
    if (routes.length === 0 && lost > 0) {
      recs.push({
        rule: 'cache',
        layer: 'cache',
        route: null,
        finding: `cache hit ratio ${pct(cache.hitRatio)} against the ${pct(config.cacheHitTarget)} target`,
        action: 'Raise ttl or add tags on the busiest cached routes (per-route cache stats were not available).',
        expectedGain: `up to +${r2(lost)} points`,
        impact: r2(lost),
      });
    }
  }
}

/** rate-limit pressure: full at blocked share ≤ target, none at 10 × target. */
function rateLimitRule(c: RuleContext): void {
  const { snapshot, config, rules, recs } = c;
  const rl = snapshot.rateLimit;
  const decided = rl === null ? 0 : rl.allowed + rl.blocked;
  const blockedShare = rl === null || decided === 0 ? 0 : rl.blocked / decided;
  const B = config.blockedShareTarget;
  // Like the errors rule: too few decisions award nothing, but blocks over the target count.
  if (rl === null || decided === 0 || (decided < config.minRequests && blockedShare <= B)) {
    rules.push({
      name: 'rateLimit',
      weight: RULE_WEIGHTS.rateLimit,
      points: null,
      explanation:
        rl === null
          ? 'No rate limiter: not scored.'
          : `Fewer than ${config.minRequests} rate-limit decisions, none over the target: not scored.`,
    });
  } else {
    const points = r2(RULE_WEIGHTS.rateLimit * clamp01(1 - Math.max(0, blockedShare - B) / (9 * B)));
    rules.push({
      name: 'rateLimit',
      weight: RULE_WEIGHTS.rateLimit,
      points,
      explanation: `${pct(blockedShare)} of ${num(decided)} requests blocked since start; full points at or under ${pct(B)}, none at ${pct(10 * B)}.`,
    });
    const lost = RULE_WEIGHTS.rateLimit - points;
    const limits = rl.limits.filter((l) => l.allowed + l.blocked > 0 && l.blocked / (l.allowed + l.blocked) > B);
    const blocked = limits.reduce((sum, l) => sum + l.blocked, 0);
    for (const l of limits) {
      const impact = lost > 0 ? share(lost, l.blocked, blocked) : 0;
      recs.push({
        rule: 'rateLimit',
        layer: 'rate-limit',
        route: l.name,
        finding: `limit "${l.name}" blocked ${pct(l.blocked / (l.allowed + l.blocked))} of its requests (${num(l.blocked)} of ${num(l.allowed + l.blocked)})`,
        action:
          'If the blocked clients are legitimate, raise rateLimit.limit or key by user (keyGenerator) rather than IP — NAT and proxies put many users behind one address; if they are abusive, keep the limit.',
        expectedGain: `up to +${impact} points; ${num(l.blocked)} fewer 429s at this traffic`,
        impact,
      });
    }
  }
}

/**
 * Outbound clients retrying more than 10 % of their calls (the seed's alert): a recommendation
 * per client. Not scored (a dependency's trouble is not this service's score), so impact 0.
 */
function retryRecommendations(c: RuleContext): void {
  for (const a of c.snapshot.alerts) {
    if (a.rule !== 'retry-rate') continue;
    c.recs.push({
      rule: 'retry-rate',
      layer: 'client',
      route: a.route ?? null,
      finding: a.message,
      action: a.recommendation,
      expectedGain: 'not scored; fewer calls piling onto a struggling dependency, and faster answers',
      impact: 0,
    });
  }
}

/** breakers: none open and no shedding for full points; half-open halves them; open or shedding: none. */
function breakersRule(c: RuleContext): void {
  const { snapshot, rules, recs } = c;
  const br = snapshot.breakers;
  if (br === null) {
    rules.push({
      name: 'breakers',
      weight: RULE_WEIGHTS.breakers,
      points: null,
      explanation: 'No circuit breakers: not scored.',
    });
  } else {
    const points =
      br.open > 0 || br.overloaded ? 0 : br.halfOpen > 0 ? RULE_WEIGHTS.breakers / 2 : RULE_WEIGHTS.breakers;
    rules.push({
      name: 'breakers',
      weight: RULE_WEIGHTS.breakers,
      points,
      explanation: `${br.open} open and ${br.halfOpen} half-open of ${br.list.length} breakers${br.overloaded ? ', shedding load' : ''}: full points when all are closed, half when one is half-open, none when one is open or load is shed.`,
    });
    const open = br.list.filter((b) => b.state === 'open');
    const parts = open.length + (br.overloaded ? 1 : 0);
    for (const b of open) {
      const impact = r2(RULE_WEIGHTS.breakers / parts);
      recs.push({
        rule: 'breakers',
        layer: 'circuit-breaker',
        route: b.name,
        finding: `breaker "${b.name}" is open (${num(b.failures)} failures, ${num(b.rejected)} requests refused)`,
        action:
          "Fix what fails behind it (see the route's error rate and p99); reset the breaker once it is healthy. If it opens on slowness rather than errors, raise circuitBreaker.timeout.",
        expectedGain: `up to +${impact} points; the route answers again instead of 503 CIRCUIT_OPEN`,
        impact,
      });
    }
    if (br.overloaded) {
      const impact = r2(RULE_WEIGHTS.breakers / parts);
      recs.push({
        rule: 'breakers',
        layer: 'circuit-breaker',
        route: null,
        finding: `the server sheds load (${num(br.shed)} requests refused)`,
        action:
          'Add instances, or raise circuitBreaker.maxConcurrent if the machine has headroom; profile the slowest routes.',
        expectedGain: `up to +${impact} points; no more 503 OVERLOADED`,
        impact,
      });
    }
  }
}

/** event-loop delay: full at p99 ≤ target, none at 10 × target. */
function eventLoopRule(c: RuleContext): void {
  const { snapshot, config, rules, recs } = c;
  const loop = snapshot.process.eventLoopDelayMs.p99;
  const L = config.eventLoopDelayTargetMs;
  const loopPoints = r2(RULE_WEIGHTS.eventLoop * clamp01(1 - Math.max(0, loop - L) / (9 * L)));
  rules.push({
    name: 'eventLoop',
    weight: RULE_WEIGHTS.eventLoop,
    points: loopPoints,
    explanation: `Event-loop delay p99 ${msText(loop)}; full points at or under ${msText(L)}, none at ${msText(10 * L)}.`,
  });
  if (loop > L) {
    const impact = r2(RULE_WEIGHTS.eventLoop - loopPoints);
    recs.push({
      rule: 'eventLoop',
      layer: 'process',
      route: null,
      finding: `event-loop delay p99 ${msText(loop)} against ${msText(L)}`,
      action:
        'Something blocks the loop: record a CPU profile (Profiling → CPU) and move the top synchronous work (large JSON, crypto, regular expressions, sync fs) off the request path or to a worker thread.',
      expectedGain: `up to +${impact} points; every request waits ~${msText(loop - L)} less at p99`,
      impact,
    });
  }
}

/** memory: full at heap share ≤ target, none at 95 %; halved while the leak watch alerts. */
function memoryRule(c: RuleContext): void {
  const { snapshot, config, leakAlerts, rules, recs } = c;
  const p = snapshot.process;
  const heapShare = p.heapLimitBytes > 0 ? p.heapUsedBytes / p.heapLimitBytes : 0;
  const H = config.heapShareTarget;
  const base = RULE_WEIGHTS.memory * clamp01(1 - Math.max(0, heapShare - H) / Math.max(0.0001, 0.95 - H));
  const memoryPoints = r2(leakAlerts.length > 0 ? base / 2 : base);
  rules.push({
    name: 'memory',
    weight: RULE_WEIGHTS.memory,
    points: memoryPoints,
    explanation: `Heap ${mb(p.heapUsedBytes)} of a ${mb(p.heapLimitBytes)} limit (${pct(heapShare)}); full points at or under ${pct(H)}, none at 95%${leakAlerts.length > 0 ? `; halved: the leak watch raises ${leakAlerts.length} alert(s)` : ''}.`,
  });
  if (heapShare > H) {
    const impact = r2(RULE_WEIGHTS.memory - base);
    recs.push({
      rule: 'memory',
      layer: 'process',
      route: null,
      finding: `heap at ${pct(heapShare)} of its limit (${mb(p.heapUsedBytes)} of ${mb(p.heapLimitBytes)})`,
      action:
        'Run a sampling heap profile (Profiling → Heap sampling) to see what allocates; if the working set is legitimate, raise --max-old-space-size or shrink in-memory caches (cache.maxBytes).',
      expectedGain: `up to +${impact} points; room before the process runs out of memory`,
      impact,
    });
  }
  for (const a of leakAlerts) {
    const impact = r2(base / 2 / leakAlerts.length);
    recs.push({
      rule: 'memory',
      layer: 'process',
      route: null,
      finding: a.message,
      action: a.recommendation,
      expectedGain: `up to +${impact} points; stops the growth before it ends in an out-of-memory crash`,
      impact,
    });
  }
}
