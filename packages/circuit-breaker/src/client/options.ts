/**
 * Options of {@link createClient}, its named presets and their resolution into one
 * fully-required config (STYLE.md rule 2), validated at construction (rule 3).
 */
import type { IncomingMessage } from 'node:http';
import {
  checkOptionsObject,
  optionRangeError,
  optionTypeError,
  parseDuration,
  readBoolean,
  readFunction,
  readInteger,
  readNumber,
  readString,
  type SharedContext,
} from '@perfstack/core';
import { type BreakerClock, isClock, systemClock } from '../clock.js';
import { type BreakerPolicy, type BreakerPolicyOptions, PKG, POLICY_KEYS, resolvePolicy } from '../policy.js';

/** Retries of the client. */
export interface ClientRetryOptions {
  /** Attempts in all, the first one included (1 = no retry). @default 3 (preset `default`) */
  readonly maxAttempts?: number;
  /** The cap of the first retry's random delay (full jitter). @default 100 */
  readonly initialDelay?: number | string;
  /** The largest cap of any retry's delay. @default '2s' */
  readonly maxDelay?: number | string;
  /** Growth of the delay cap per retry: cap = min(maxDelay, initialDelay · multiplierⁿ). @default 2 */
  readonly multiplier?: number;
  /** Overall time budget of a call across every attempt and delay. @default '10s' */
  readonly deadline?: number | string;
  /** Response statuses worth another attempt. @default [429, 502, 503, 504] */
  readonly statuses?: readonly number[];
  /** Retry non-idempotent methods (POST, PATCH) too. Per call: `request({ idempotent: true })`. @default false */
  readonly retryNonIdempotent?: boolean;
}

/** The retry budget: retries ≤ `ratio` × requests + `minPerSecond` × window seconds, over a sliding window. */
export interface RetryBudgetOptions {
  /** Share of requests that may be retried. @default 0.1 */
  readonly ratio?: number;
  /** Retries per second always allowed (so a quiet client can still retry). @default 10 */
  readonly minPerSecond?: number;
  /** The sliding window. @default '10s' */
  readonly window?: number | string;
}

/** Active health checks: `GET path` on every origin each `interval`; 2xx/3xx is healthy. */
export interface HealthCheckOptions {
  /** The path probed on each origin. @default '/health' */
  readonly path?: string;
  /** Time between probes. @default '5s' */
  readonly interval?: number | string;
  /** Time budget of one probe. @default '2s' */
  readonly timeout?: number | string;
  /** Consecutive failed probes that take an origin out (a refused connection on a call takes it out at once). @default 2 */
  readonly unhealthyThreshold?: number;
}

/** Request hedging: when the first attempt has no answer after `delay`, a second one goes to another origin; the first answer wins. */
export interface HedgeOptions {
  /** Wait before the hedged attempt (typically the origin's p95). @default 50 */
  readonly delay?: number | string;
}

/** The names of the presets. */
export type ClientPresetName = 'default' | 'critical';

/** Trace context to propagate on an outbound call. */
export interface TraceContext {
  readonly requestId?: string;
  readonly traceparent?: string;
}

/** Options of {@link createClient}. */
export interface ClientOptions extends SharedContext {
  /** Base URLs (`http://host:port`, optionally with a path prefix); one or more. Required. */
  readonly origins: string | readonly string[];
  /** Named preset whose values the other options override. @default 'default' */
  readonly preset?: ClientPresetName;
  /** Retries; `false` for none. @default the preset's */
  readonly retry?: ClientRetryOptions | false;
  /** Retry budget; `false` for none. @default { ratio: 0.1, minPerSecond: 10, window: '10s' } */
  readonly retryBudget?: RetryBudgetOptions | false;
  /** Time budget of one attempt (until the response head). @default the preset's */
  readonly timeout?: number | string | false;
  /** Calls of this client running at once (a bulkhead); more wait. Off unless set. @default the preset's */
  readonly maxConcurrent?: number | false;
  /** Calls that may wait for a bulkhead slot; beyond it `BulkheadFullError`. @default 0 */
  readonly maxQueue?: number;
  /** Keep-alive connections per origin (undici `Pool`). @default 16 */
  readonly connections?: number;
  /** The breaker of each origin (5xx and connection errors count as failures). @default the preset's */
  readonly breaker?: BreakerPolicyOptions;
  /** Active health checks; off unless set (the breakers then are the passive checks). @default false */
  readonly healthCheck?: HealthCheckOptions | false;
  /** Hedged requests for idempotent calls; off unless set. @default false */
  readonly hedge?: HedgeOptions | false;
  /** Supplies the trace context when a call passes none (e.g. from the app's AsyncLocalStorage). @default none */
  readonly context?: () => TraceContext | undefined;
  /** Time source, for tests. @default the system clock */
  readonly clock?: BreakerClock;
  /** Randomness of the backoff jitter, for tests. @default Math.random */
  readonly random?: () => number;
}

/** One call. */
export interface ClientRequest {
  /** @default 'GET' */
  readonly method?: string;
  /** Path and query, appended to the origin's base URL. Required, starts with `/`. */
  readonly path: string;
  readonly headers?: Readonly<Record<string, string | readonly string[] | undefined>>;
  /** A string or bytes (replayable across retries). A stream is sent once: no retry. */
  readonly body?: string | Uint8Array | NodeJS.ReadableStream | null;
  /** Overrides the idempotency of the method (e.g. a POST with an idempotency key). */
  readonly idempotent?: boolean;
  /** The inbound request whose `X-Request-Id` and `traceparent` are propagated. */
  readonly inbound?: IncomingMessage;
  /** An explicit `X-Request-Id` to send. */
  readonly requestId?: string;
  /** An explicit W3C `traceparent` to send. */
  readonly traceparent?: string;
  /** Aborts the call (every attempt and delay). */
  readonly signal?: AbortSignal;
}

/** The resolved config. */
export interface ClientConfig {
  readonly name: string;
  readonly origins: readonly URL[];
  readonly maxAttempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  readonly deadlineMs: number;
  readonly statuses: ReadonlySet<number>;
  readonly retryNonIdempotent: boolean;
  readonly budget: { readonly ratio: number; readonly minPerSecond: number; readonly windowMs: number } | undefined;
  readonly timeoutMs: number | undefined;
  readonly maxConcurrent: number | undefined;
  readonly maxQueue: number;
  readonly connections: number;
  readonly policy: BreakerPolicy;
  readonly healthCheck:
    | {
        readonly path: string;
        readonly intervalMs: number;
        readonly timeoutMs: number;
        readonly unhealthyThreshold: number;
      }
    | undefined;
  readonly hedgeDelayMs: number | undefined;
  readonly context: (() => TraceContext | undefined) | undefined;
  readonly clock: BreakerClock;
  readonly random: () => number;
}

/**
 * The presets. `default` suits an ordinary dependency; `critical` a dependency on the hot
 * path: a tighter deadline and per-attempt timeout, faster retries, a breaker that opens
 * sooner and probes sooner, and hedging after 100 ms.
 */
export const CLIENT_PRESETS: Readonly<Record<ClientPresetName, Omit<ClientOptions, 'origins' | 'preset'>>> =
  Object.freeze({
    default: Object.freeze({
      retry: Object.freeze({ maxAttempts: 3, initialDelay: 100, maxDelay: 2000, multiplier: 2, deadline: 10_000 }),
      timeout: 5000,
      breaker: Object.freeze({ failureThreshold: 5, resetTimeout: 30_000 }),
    }),
    critical: Object.freeze({
      retry: Object.freeze({ maxAttempts: 4, initialDelay: 50, maxDelay: 1000, multiplier: 2, deadline: 3000 }),
      timeout: 1000,
      breaker: Object.freeze({ failureThreshold: 3, resetTimeout: 10_000 }),
      hedge: Object.freeze({ delay: 100 }),
    }),
  });

const KEYS = [
  'origins',
  'preset',
  'retry',
  'retryBudget',
  'timeout',
  'maxConcurrent',
  'maxQueue',
  'connections',
  'breaker',
  'healthCheck',
  'hedge',
  'context',
  'clock',
  'random',
  'registry',
  'redis',
  'logger',
] as const;
const RETRY_KEYS = [
  'maxAttempts',
  'initialDelay',
  'maxDelay',
  'multiplier',
  'deadline',
  'statuses',
  'retryNonIdempotent',
] as const;
const DEFAULT_STATUSES = [429, 502, 503, 504];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function readOrigins(value: unknown): URL[] {
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) {
    throw optionTypeError(PKG, 'origins', value, 'a base URL or a non-empty array of them, e.g. "http://api:8080"');
  }
  const seen = new Set<string>();
  return list.map((entry: unknown, i) => {
    let url: URL;
    try {
      url = new URL(String(entry));
    } catch {
      throw optionTypeError(PKG, `origins[${i}]`, entry, 'an absolute http(s) URL');
    }
    if (typeof entry !== 'string' || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw optionTypeError(PKG, `origins[${i}]`, entry, 'an absolute http(s) URL');
    }
    if (url.search !== '' || url.hash !== '') {
      throw optionRangeError(PKG, `origins[${i}]`, entry, 'a base URL without query or fragment');
    }
    const key = url.href;
    if (seen.has(key)) throw optionRangeError(PKG, `origins[${i}]`, entry, 'a URL not listed twice');
    seen.add(key);
    return url;
  });
}

function duration(value: unknown, option: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  return parseDuration(value as number | string, option, { pkg: PKG, min });
}

/** Resolves and validates the options of `createClient(name, options)`. */
export function resolveClientOptions(name: unknown, input: ClientOptions | undefined): ClientConfig {
  if (typeof name !== 'string' || name === '' || !/^[A-Za-z0-9_.:-]+$/.test(name)) {
    throw optionTypeError(PKG, 'name', name, 'a non-empty name of letters, digits, "_", ".", ":" or "-"');
  }
  if (input === undefined) throw optionTypeError(PKG, 'origins', undefined, 'a base URL or an array of them');
  const options = checkOptionsObject(PKG, 'createClient', input, KEYS) as ClientOptions;
  const presetName = readString<ClientPresetName>(PKG, 'preset', options.preset, 'default', ['default', 'critical']);
  const preset = CLIENT_PRESETS[presetName];
  const origins = readOrigins(options.origins);

  if (options.retry !== undefined && options.retry !== false && !isObject(options.retry)) {
    throw optionTypeError(PKG, 'retry', options.retry, 'an object like { maxAttempts: 3 } or false');
  }
  const retryIn =
    options.retry === false
      ? { ...preset.retry, maxAttempts: 1 }
      : {
          ...(preset.retry as ClientRetryOptions),
          ...checkOptionsObject(PKG, 'createClient({ retry })', options.retry, RETRY_KEYS),
        };
  const initialDelayMs = duration(retryIn.initialDelay, 'retry.initialDelay', 100);
  const maxDelayMs = duration(retryIn.maxDelay, 'retry.maxDelay', 2000);
  if (maxDelayMs < initialDelayMs) {
    throw optionRangeError(
      PKG,
      'retry.maxDelay',
      retryIn.maxDelay,
      `at least retry.initialDelay (${initialDelayMs}ms)`,
    );
  }
  const statuses = retryIn.statuses ?? DEFAULT_STATUSES;
  if (!Array.isArray(statuses) || statuses.some((s) => !Number.isInteger(s) || s < 100 || s > 599)) {
    throw optionTypeError(PKG, 'retry.statuses', retryIn.statuses, 'an array of HTTP status codes');
  }

  let budget: ClientConfig['budget'];
  if (options.retryBudget !== false) {
    if (options.retryBudget !== undefined && !isObject(options.retryBudget)) {
      throw optionTypeError(PKG, 'retryBudget', options.retryBudget, 'an object like { ratio: 0.1 } or false');
    }
    const b = checkOptionsObject(PKG, 'createClient({ retryBudget })', options.retryBudget, [
      'ratio',
      'minPerSecond',
      'window',
    ]) as RetryBudgetOptions;
    budget = {
      ratio: readNumber(PKG, 'retryBudget.ratio', b.ratio, 0.1, 0, 1),
      minPerSecond: readNumber(PKG, 'retryBudget.minPerSecond', b.minPerSecond, 10, 0),
      windowMs: duration(b.window, 'retryBudget.window', 10_000, 10),
    };
  }

  const timeoutIn = options.timeout === undefined ? preset.timeout : options.timeout;
  const timeoutMs = timeoutIn === undefined || timeoutIn === false ? undefined : duration(timeoutIn, 'timeout', 0, 1);
  const concurrentIn = options.maxConcurrent === undefined ? preset.maxConcurrent : options.maxConcurrent;
  const maxConcurrent =
    concurrentIn === undefined || concurrentIn === false
      ? undefined
      : readInteger(PKG, 'maxConcurrent', concurrentIn, 1, 1);
  const maxQueue = readInteger(PKG, 'maxQueue', options.maxQueue, 0, 0);
  if (maxQueue > 0 && maxConcurrent === undefined) {
    throw optionRangeError(PKG, 'maxQueue', options.maxQueue, '0 unless "maxConcurrent" is set');
  }

  if (options.breaker !== undefined && !isObject(options.breaker)) {
    throw optionTypeError(PKG, 'breaker', options.breaker, 'an object like { failureThreshold: 5 }');
  }
  const breakerIn = {
    ...preset.breaker,
    ...checkOptionsObject(PKG, 'createClient({ breaker })', options.breaker, POLICY_KEYS),
  };

  let healthCheck: ClientConfig['healthCheck'];
  if (options.healthCheck !== undefined && options.healthCheck !== false) {
    if (!isObject(options.healthCheck)) {
      throw optionTypeError(
        PKG,
        'healthCheck',
        options.healthCheck,
        'an object like { path: "/health", interval: "5s" } or false',
      );
    }
    const h = checkOptionsObject(PKG, 'createClient({ healthCheck })', options.healthCheck, [
      'path',
      'interval',
      'timeout',
      'unhealthyThreshold',
    ]) as HealthCheckOptions;
    const path = readString(PKG, 'healthCheck.path', h.path, '/health');
    if (!path.startsWith('/')) throw optionRangeError(PKG, 'healthCheck.path', h.path, 'a path starting with "/"');
    const intervalMs = duration(h.interval, 'healthCheck.interval', 5000, 1);
    healthCheck = {
      path,
      intervalMs,
      timeoutMs: duration(h.timeout, 'healthCheck.timeout', 2000, 1),
      unhealthyThreshold: readInteger(PKG, 'healthCheck.unhealthyThreshold', h.unhealthyThreshold, 2, 1, 1000),
    };
  }

  const hedgeIn = options.hedge === undefined ? preset.hedge : options.hedge;
  let hedgeDelayMs: number | undefined;
  if (hedgeIn !== undefined && hedgeIn !== false) {
    if (!isObject(hedgeIn)) throw optionTypeError(PKG, 'hedge', hedgeIn, 'an object like { delay: 50 } or false');
    const h = checkOptionsObject(PKG, 'createClient({ hedge })', hedgeIn as HedgeOptions, ['delay']);
    hedgeDelayMs = duration(h.delay, 'hedge.delay', 50, 0);
  }

  if (options.clock !== undefined && !isClock(options.clock)) {
    throw optionTypeError(PKG, 'clock', options.clock, 'an object with now(), setTimeout() and clearTimeout()');
  }
  return {
    name,
    origins,
    maxAttempts: readInteger(PKG, 'retry.maxAttempts', retryIn.maxAttempts, 3, 1, 100),
    initialDelayMs,
    maxDelayMs,
    multiplier: readNumber(PKG, 'retry.multiplier', retryIn.multiplier, 2, 1, 100),
    deadlineMs: duration(retryIn.deadline, 'retry.deadline', 10_000, 1),
    statuses: new Set(statuses),
    retryNonIdempotent: readBoolean(PKG, 'retry.retryNonIdempotent', retryIn.retryNonIdempotent, false),
    budget,
    timeoutMs,
    maxConcurrent,
    maxQueue,
    connections: readInteger(PKG, 'connections', options.connections, 16, 1, 10_000),
    policy: resolvePolicy(breakerIn, undefined, 'breaker.'),
    healthCheck,
    hedgeDelayMs,
    context: readFunction(PKG, 'context', options.context),
    clock: options.clock ?? systemClock,
    random: readFunction(PKG, 'random', options.random, Math.random),
  };
}
