/**
 * Alert rules on the rolling data: the five defaults (CPU, memory, cache hit rate, error
 * rate, average latency), custom rules, and their validation. A rule reads one number
 * from the snapshot; it fires when that number stays past its threshold for `for`, and
 * every alert says in plain words which route, which layer and what to change.
 */
import { optionRangeError, optionTypeError, parseBytes, parseDuration, readInteger, readNumber } from '@perfstack/core';
import type { DetailedTimingSnapshot } from '../snapshot.js';
import type { TimingRouteStats } from '../windows.js';

const PKG = '@perfstack/timing';

/** How bad an alert is. */
export type AlertSeverity = 'warning' | 'critical';

/** What a rule's `recommendation` may return: plain words, or words plus the layer and route they name. */
export type Recommendation =
  | string
  | { readonly recommendation: string; readonly layer?: string; readonly route?: string; readonly message?: string };

/** A custom alert rule: a function of the snapshot compared with a threshold. */
export interface AlertRule {
  /** Unique name, also the alert's `rule` (e.g. `'slow-checkout'`). */
  readonly name: string;
  /** The value that must be passed. */
  readonly threshold: number;
  /** Fire when the value is above (default) or below the threshold. @default 'above' */
  readonly when?: 'above' | 'below';
  /** How long the condition must hold before the alert fires (ms or `'2m'`). @default 0 */
  readonly for?: number | string;
  /** @default 'warning' */
  readonly severity?: AlertSeverity;
  /** The layer the alert points at (`'cache'`, `'app'`...). */
  readonly layer?: string;
  /** The measured value; `undefined` when there is not enough data (the condition does not hold). */
  readonly value: (snapshot: DetailedTimingSnapshot) => number | undefined;
  /** What to change, in plain words. */
  readonly recommendation: Recommendation | ((value: number, snapshot: DetailedTimingSnapshot) => Recommendation);
}

/** Settings of a default rule; `false` turns it off. */
export interface DefaultRuleOptions {
  /** The threshold (see each rule for its unit). */
  readonly threshold?: number;
  /** How long the condition must hold (ms or `'2m'`). */
  readonly for?: number | string;
  readonly severity?: AlertSeverity;
}

/** Settings of the `alerts` option. */
export interface AlertsOptions {
  /** CPU use above `threshold` percent of one core. @default { threshold: 80, for: '2m' } */
  readonly cpu?: boolean | DefaultRuleOptions;
  /**
   * Memory above `threshold` (a fraction): heap used / V8 heap limit, or RSS / `limitBytes`
   * when given (a container limit). @default { threshold: 0.85, for: '2m' }
   */
  readonly memory?: boolean | (DefaultRuleOptions & { readonly limitBytes?: number | string });
  /**
   * Cache hit ratio (1-minute window) below `threshold`, judged only once there were
   * `minLookups` cache lookups. @default { threshold: 0.7, for: '5m', minLookups: 10 }
   */
  readonly cacheHitRate?: boolean | (DefaultRuleOptions & { readonly minLookups?: number });
  /** 5xx share (1-minute window) above `threshold`. @default { threshold: 0.05, for: '1m', minRequests: 10 } */
  readonly errorRate?: boolean | (DefaultRuleOptions & { readonly minRequests?: number });
  /** Mean latency (1-minute window) above `threshold` (ms or `'200ms'`). @default { threshold: 200, for: '5m', minRequests: 10 } */
  readonly latency?:
    | boolean
    | (Omit<DefaultRuleOptions, 'threshold'> & { readonly threshold?: number | string; readonly minRequests?: number });
  /** More rules. */
  readonly rules?: readonly AlertRule[];
}

/** A rule ready to evaluate. */
export interface CompiledRule {
  readonly name: string;
  readonly severity: AlertSeverity;
  readonly threshold: number;
  readonly when: 'above' | 'below';
  readonly forMs: number;
  readonly layer: string | undefined;
  value(snapshot: DetailedTimingSnapshot): number | undefined;
  describe(
    value: number,
    snapshot: DetailedTimingSnapshot,
  ): { message: string; recommendation: string; layer?: string; route?: string };
}

/** Names of the default rules. */
export const DEFAULT_RULE_NAMES = ['cpu', 'memory', 'cacheHitRate', 'errorRate', 'latency'] as const;

// ---- wording helpers -------------------------------------------------------------------

const percent = (fraction: number): string => `${Math.round(fraction * 1000) / 10}%`;
const millis = (ms: number): string => `${Math.round(ms)} ms`;
const megabytes = (bytes: number): string => `${Math.round(bytes / 1048576)} MB`;
const forWords = (ms: number): string =>
  ms % 60_000 === 0 && ms > 0 ? `${ms / 60_000} min` : ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
const routeName = (route: TimingRouteStats): string =>
  route.method === '*' ? `(routes past the maxRoutes cap, "${route.route}")` : `${route.method} ${route.route}`;

function worst(
  routes: readonly TimingRouteStats[],
  score: (route: TimingRouteStats) => number,
): TimingRouteStats | undefined {
  let best: TimingRouteStats | undefined;
  let bestScore = 0;
  for (const route of routes) {
    const s = score(route);
    if (s > bestScore) {
      best = route;
      bestScore = s;
    }
  }
  return best;
}

// ---- option readers --------------------------------------------------------------------

function readSeverity(option: string, value: unknown, fallback: AlertSeverity): AlertSeverity {
  if (value === undefined) return fallback;
  if (value !== 'warning' && value !== 'critical') {
    throw optionTypeError(PKG, option, value, '"warning" or "critical"');
  }
  return value;
}

function readFor(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  return parseDuration(value, option, { pkg: PKG, min: 0, max: 86_400_000 });
}

function ruleObject(option: string, value: unknown, known: readonly string[]): Record<string, unknown> | undefined {
  if (value === undefined || value === true) return {};
  if (value === false) return undefined;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw optionTypeError(PKG, option, value, `a boolean or an object with ${known.join(', ')}`);
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new TypeError(`${PKG}: unknown key "${key}" in option "${option}"; known keys: ${known.join(', ')}`);
    }
  }
  return value as Record<string, unknown>;
}

function readFraction(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const accepted = 'a fraction from 0 to 1 (0.85 means 85%)';
  if (typeof value !== 'number' || !Number.isFinite(value)) throw optionTypeError(PKG, option, value, accepted);
  if (value < 0 || value > 1) throw optionRangeError(PKG, option, value, accepted);
  return value;
}

// ---- the default rules -----------------------------------------------------------------

function cpuRule(options: Record<string, unknown>): CompiledRule {
  const threshold = readNumber(PKG, 'alerts.cpu.threshold', options.threshold, 80, 0, 10_000);
  const forMs = readFor('alerts.cpu.for', options.for, 120_000);
  return {
    name: 'cpu',
    severity: readSeverity('alerts.cpu.severity', options.severity, 'warning'),
    threshold,
    when: 'above',
    forMs,
    layer: 'cache',
    value: (s) => s.process.cpuPercent,
    describe(value, s) {
      const busiest = worst(s.routes, (r) => r.count * r.mean);
      const message = `CPU use has been above ${threshold}% of one core for ${forWords(forMs)} (now ${Math.round(value)}%).`;
      if (busiest === undefined) {
        return {
          message,
          layer: 'app',
          recommendation:
            'No route stands out in the last 5 minutes; profile the process (node --cpu-prof) for work outside request handling, or run more instances.',
        };
      }
      return {
        message,
        layer: 'cache',
        route: busiest.route,
        recommendation:
          `Route ${routeName(busiest)} takes the most server time (${busiest.count} requests at ${millis(busiest.mean)} on average in 5 min). ` +
          `Serve it from the cache layer (cache({ ttl: '1m' }) on that route) if its answer can be shared, lower its limit in the rate-limit layer, ` +
          `or let the circuit-breaker layer shed load (maxConcurrent) before the event loop saturates; otherwise run more instances.`,
      };
    },
  };
}

function memoryRule(options: Record<string, unknown>): CompiledRule {
  const threshold = readFraction('alerts.memory.threshold', options.threshold, 0.85);
  const forMs = readFor('alerts.memory.for', options.for, 120_000);
  const limitBytes =
    options.limitBytes === undefined
      ? undefined
      : parseBytes(options.limitBytes, 'alerts.memory.limitBytes', { pkg: PKG, min: 1 });
  return {
    name: 'memory',
    severity: readSeverity('alerts.memory.severity', options.severity, 'critical'),
    threshold,
    when: 'above',
    forMs,
    layer: 'cache',
    value: (s) =>
      limitBytes === undefined
        ? s.process.heapLimitBytes > 0
          ? s.process.heapUsedBytes / s.process.heapLimitBytes
          : undefined
        : s.process.rssBytes / limitBytes,
    describe(value, s) {
      const what =
        limitBytes === undefined
          ? `Heap used is ${percent(value)} of the V8 heap limit (${megabytes(s.process.heapUsedBytes)} of ${megabytes(s.process.heapLimitBytes)})`
          : `Resident memory is ${percent(value)} of the ${megabytes(limitBytes)} limit (${megabytes(s.process.rssBytes)})`;
      const busiest = worst(s.routes, (r) => r.count);
      return {
        message: `${what}, above ${percent(threshold)} for ${forWords(forMs)}.`,
        layer: 'cache',
        ...(busiest === undefined ? {} : { route: busiest.route }),
        recommendation:
          `Lower the cache layer's maxBytes or maxEntries (its L1 copy lives in this heap), look for growth in the app's own in-memory state` +
          (busiest === undefined ? '' : ` (the busiest route is ${routeName(busiest)})`) +
          `, or give the process more memory (--max-old-space-size, or a larger container limit).`,
      };
    },
  };
}

function cacheHitRateRule(options: Record<string, unknown>): CompiledRule {
  const threshold = readFraction('alerts.cacheHitRate.threshold', options.threshold, 0.7);
  const forMs = readFor('alerts.cacheHitRate.for', options.for, 300_000);
  const minLookups = readInteger(PKG, 'alerts.cacheHitRate.minLookups', options.minLookups, 10, 1, 1_000_000);
  return {
    name: 'cacheHitRate',
    severity: readSeverity('alerts.cacheHitRate.severity', options.severity, 'warning'),
    threshold,
    when: 'below',
    forMs,
    layer: 'cache',
    value(s) {
      const w = s.windows['1m'];
      return w.cacheHits + w.cacheMisses < minLookups ? undefined : w.cacheHitRatio;
    },
    describe(value, s) {
      const message = `The cache hit ratio has been below ${percent(threshold)} for ${forWords(forMs)} (now ${percent(value)}).`;
      const missing = worst(s.routes, (r) => r.cacheMisses);
      if (missing === undefined) {
        return {
          message,
          layer: 'cache',
          recommendation:
            'In the cache layer, raise the ttl of the cached routes, and raise maxEntries or maxBytes if entries are evicted before they are reused.',
        };
      }
      return {
        message,
        layer: 'cache',
        route: missing.route,
        recommendation:
          `Route ${routeName(missing)} missed the cache ${missing.cacheMisses} times in 5 min (hit ratio ${percent(missing.cacheHitRatio)}). ` +
          `In the cache layer, raise its ttl (e.g. cache({ ttl: '5m' })), check that Vary, Cookie or Authorization are not splitting or bypassing its entries, ` +
          `and raise maxEntries or maxBytes if entries are evicted before they are reused.`,
      };
    },
  };
}

function errorRateRule(options: Record<string, unknown>): CompiledRule {
  const threshold = readFraction('alerts.errorRate.threshold', options.threshold, 0.05);
  const forMs = readFor('alerts.errorRate.for', options.for, 60_000);
  const minRequests = readInteger(PKG, 'alerts.errorRate.minRequests', options.minRequests, 10, 1, 1_000_000);
  return {
    name: 'errorRate',
    severity: readSeverity('alerts.errorRate.severity', options.severity, 'critical'),
    threshold,
    when: 'above',
    forMs,
    layer: 'app',
    value(s) {
      const w = s.windows['1m'];
      return w.requests < minRequests ? undefined : w.errorRate;
    },
    describe(value, s) {
      const message = `The 5xx error rate has been above ${percent(threshold)} for ${forWords(forMs)} (now ${percent(value)}).`;
      const failing = worst(s.routes, (r) => r.errors);
      if (failing === undefined) {
        return {
          message,
          layer: 'app',
          recommendation: 'Check the app logs by request id for the failing calls.',
        };
      }
      return {
        message,
        layer: 'app',
        route: failing.route,
        recommendation:
          `Route ${routeName(failing)} answered ${failing.errors} of its ${failing.count} requests with a 5xx in 5 min (error rate ${percent(failing.errorRate)}). ` +
          `Check the app's handler for it and the service it calls (the logger layer's request ids lead to the failing calls); ` +
          `if a dependency is down, make the circuit-breaker layer open sooner (lower failureThreshold) and let the cache layer answer from stale entries (staleIfError).`,
      };
    },
  };
}

function latencyRule(options: Record<string, unknown>): CompiledRule {
  const threshold =
    options.threshold === undefined
      ? 200
      : parseDuration(options.threshold, 'alerts.latency.threshold', { pkg: PKG, min: 1 });
  const forMs = readFor('alerts.latency.for', options.for, 300_000);
  const minRequests = readInteger(PKG, 'alerts.latency.minRequests', options.minRequests, 10, 1, 1_000_000);
  return {
    name: 'latency',
    severity: readSeverity('alerts.latency.severity', options.severity, 'warning'),
    threshold,
    when: 'above',
    forMs,
    layer: 'cache',
    value(s) {
      const w = s.windows['1m'];
      return w.requests < minRequests ? undefined : w.latency.mean;
    },
    describe(value, s) {
      const message = `The average latency has been above ${millis(threshold)} for ${forWords(forMs)} (now ${millis(value)}).`;
      const slowest = worst(s.routes, (r) => r.p95);
      if (slowest === undefined) {
        return { message, layer: 'app', recommendation: 'Profile the app: no route stands out in the last 5 minutes.' };
      }
      return {
        message,
        layer: 'cache',
        route: slowest.route,
        recommendation:
          `Route ${routeName(slowest)} is the slowest (p95 ${millis(slowest.p95)}, ${slowest.count} requests in 5 min). ` +
          `Serve it from the cache layer (cache({ ttl: '1m' }) on that route) if its answer can be shared, ` +
          `or give it a time budget with the circuit-breaker layer's timeout so slow calls fail fast; otherwise profile its handler and what it calls.`,
      };
    },
  };
}

// ---- custom rules ----------------------------------------------------------------------

function customRule(rule: unknown, index: number, taken: Set<string>): CompiledRule {
  const at = `alerts.rules[${index}]`;
  const known = ['name', 'threshold', 'when', 'for', 'severity', 'layer', 'value', 'recommendation'];
  const object = ruleObject(at, rule, known);
  if (object === undefined || rule === true) throw optionTypeError(PKG, at, rule, 'a rule object');
  const { name, threshold, when, value, recommendation, layer } = object;
  if (typeof name !== 'string' || !/^[A-Za-z][\w.-]{0,63}$/.test(name)) {
    throw optionTypeError(PKG, `${at}.name`, name, 'a name of letters, digits, "_", "-" or "." starting with a letter');
  }
  if (taken.has(name)) throw optionRangeError(PKG, `${at}.name`, name, 'a name no other rule uses');
  taken.add(name);
  if (typeof threshold !== 'number' || !Number.isFinite(threshold)) {
    throw optionTypeError(PKG, `${at}.threshold`, threshold, 'a finite number');
  }
  if (when !== undefined && when !== 'above' && when !== 'below') {
    throw optionTypeError(PKG, `${at}.when`, when, '"above" or "below"');
  }
  if (typeof value !== 'function') throw optionTypeError(PKG, `${at}.value`, value, 'a function of the snapshot');
  if (typeof recommendation !== 'string' && typeof recommendation !== 'function' && !isRecommendation(recommendation)) {
    throw optionTypeError(PKG, `${at}.recommendation`, recommendation, 'a string, { recommendation } or a function');
  }
  if (layer !== undefined && typeof layer !== 'string') throw optionTypeError(PKG, `${at}.layer`, layer, 'a string');
  const typed = rule as AlertRule;
  const comparison = when ?? 'above';
  return {
    name,
    severity: readSeverity(`${at}.severity`, object.severity, 'warning'),
    threshold,
    when: comparison,
    forMs: readFor(`${at}.for`, object.for, 0),
    layer: typed.layer,
    value: typed.value,
    describe(measured, snapshot) {
      const given =
        typeof typed.recommendation === 'function' ? typed.recommendation(measured, snapshot) : typed.recommendation;
      const base = { message: `${name} is ${measured}, ${comparison} the threshold ${threshold}.` };
      const withLayer = typed.layer === undefined ? {} : { layer: typed.layer };
      if (typeof given === 'string') return { ...base, ...withLayer, recommendation: given };
      if (!isRecommendation(given)) return { ...base, ...withLayer, recommendation: String(given) };
      return {
        message: given.message ?? base.message,
        recommendation: given.recommendation,
        ...withLayer,
        ...(given.layer === undefined ? {} : { layer: given.layer }),
        ...(given.route === undefined ? {} : { route: given.route }),
      };
    },
  };
}

function isRecommendation(value: unknown): value is Exclude<Recommendation, string> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { recommendation?: unknown }).recommendation === 'string'
  );
}

/**
 * Validates the `alerts` option and returns the rules to evaluate (an empty list for `false`).
 *
 * @throws {TypeError|RangeError} naming the bad key, its value and the accepted form
 */
export function compileAlerts(alerts: unknown): CompiledRule[] {
  if (alerts === false) return [];
  const known = [...DEFAULT_RULE_NAMES, 'rules'];
  const options = ruleObject('alerts', alerts, known) as AlertsOptions;
  const rules: CompiledRule[] = [];
  const cpu = ruleObject('alerts.cpu', options.cpu, ['threshold', 'for', 'severity']);
  if (cpu) rules.push(cpuRule(cpu));
  const memory = ruleObject('alerts.memory', options.memory, ['threshold', 'for', 'severity', 'limitBytes']);
  if (memory) rules.push(memoryRule(memory));
  const cache = ruleObject('alerts.cacheHitRate', options.cacheHitRate, ['threshold', 'for', 'severity', 'minLookups']);
  if (cache) rules.push(cacheHitRateRule(cache));
  const errors = ruleObject('alerts.errorRate', options.errorRate, ['threshold', 'for', 'severity', 'minRequests']);
  if (errors) rules.push(errorRateRule(errors));
  const latency = ruleObject('alerts.latency', options.latency, ['threshold', 'for', 'severity', 'minRequests']);
  if (latency) rules.push(latencyRule(latency));
  if (options.rules !== undefined) {
    if (!Array.isArray(options.rules)) throw optionTypeError(PKG, 'alerts.rules', options.rules, 'an array of rules');
    const taken = new Set<string>(DEFAULT_RULE_NAMES);
    options.rules.forEach((rule, index) => {
      rules.push(customRule(rule, index, taken));
    });
  }
  return rules;
}
