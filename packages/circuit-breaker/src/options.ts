/**
 * Options of the inbound middleware, resolved once into a {@link MiddlewareConfig}
 * (ARCHITECTURE.md rule 2). Every check runs here, at construction (rule 3).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  checkOptionsObject,
  consoleLogger,
  createRegistry,
  OnceLogger,
  optionTypeError,
  parseDuration,
  pathPrefixMatcher,
  type Registry,
  readFunction,
  readInteger,
  type SharedContext,
} from '@perfstack/core';
import { type AdaptiveConcurrencyOptions, type AdaptiveConfig, resolveAdaptive } from './adaptive.js';
import { type BreakerClock, isClock, systemClock } from './clock.js';
import { type OverloadConfig, type OverloadOptions, resolveOverload } from './overload.js';
import { type BreakerPolicy, type BreakerPolicyOptions, PKG, POLICY_KEYS, resolvePolicy } from './policy.js';

/** Why the breaker is not letting the app answer. */
export type FallbackReason = 'circuit-open' | 'timeout' | 'overloaded';

/**
 * Answers a request the breaker turned away, instead of the problem+json response.
 * It must end the response; for `timeout` it must do so synchronously (the app's late
 * writes are discarded from then on).
 */
export type FallbackHandler = (req: IncomingMessage, res: ServerResponse, reason: FallbackReason) => void;

/** Decides whether a finished request counts as a failure. */
export type FailurePredicate = (statusCode: number, error: unknown) => boolean;

/** What can be set for all routes and overridden per route. */
export interface RouteGuardOptions extends BreakerPolicyOptions {
  /** Time budget of a request (queue wait included); over it the client gets 504 `TIMEOUT`. Off unless set. @default false */
  readonly timeout?: number | string | false;
  /** Requests of one route running at once; more wait in a queue. Off unless set. @default false */
  readonly maxConcurrent?: number | false;
  /** Requests that may wait for a slot; beyond it the client gets 503 `OVERLOADED`. Needs `maxConcurrent`. @default 0 */
  readonly maxQueue?: number;
  /** Whether a finished request is a failure. @default (status) => status >= 500 */
  readonly isFailure?: FailurePredicate;
  /** Answers instead of the 503/504 problem, after a registered stale fallback declined. @default undefined */
  readonly fallback?: FallbackHandler;
  /**
   * A concurrency limit that finds itself (Vegas, see adaptive.ts): requests over it get 503
   * `OVERLOADED` with `Retry-After: 1` at once. `true` takes every default. Off unless set.
   * @default false
   */
  readonly adaptiveConcurrency?: boolean | AdaptiveConcurrencyOptions;
}

/** Options of {@link circuitBreaker}. */
export interface CircuitBreakerOptions extends RouteGuardOptions, SharedContext {
  /** The breaker key of a request; `undefined` falls back to the route pattern. @default the route pattern */
  readonly key?: (req: IncomingMessage) => string | undefined;
  /** Process overload shedding; `false` turns it off. @default { maxEventLoopDelay: '1s', sampleInterval: '1s' } */
  readonly overload?: OverloadOptions | false;
  /** Path prefixes never shed nor guarded (`/health` covers `/health/live`). @default [] */
  readonly exempt?: readonly string[];
  /** Per-route overrides, by route pattern for every method (`'/reports/:id'`), by `'GET /reports/:id'`, or by key with a custom `key`. @default {} */
  readonly routes?: Readonly<Record<string, RouteGuardOptions>>;
  /** Route patterns learned (and breakers kept) at most; requests of further routes are not guarded. @default 100 */
  readonly maxRoutes?: number;
  /** Time source, for tests. @default the system clock with unref()ed timers */
  readonly clock?: BreakerClock;
}

/** The resolved per-route settings. */
export interface GuardConfig {
  readonly policy: BreakerPolicy;
  readonly timeoutMs: number | undefined;
  readonly maxConcurrent: number | undefined;
  readonly maxQueue: number;
  readonly isFailure: FailurePredicate;
  readonly fallback: FallbackHandler | undefined;
  readonly adaptive: AdaptiveConfig | undefined;
}

/** The resolved middleware settings. */
export interface MiddlewareConfig {
  readonly defaults: GuardConfig;
  readonly routes: ReadonlyMap<string, GuardConfig>;
  readonly key: ((req: IncomingMessage) => string | undefined) | undefined;
  readonly overload: OverloadConfig | undefined;
  readonly isExempt: (path: string) => boolean;
  readonly maxRoutes: number;
  readonly clock: BreakerClock;
  readonly registry: Registry;
  readonly log: OnceLogger;
}

const GUARD_KEYS = [
  ...POLICY_KEYS,
  'timeout',
  'maxConcurrent',
  'maxQueue',
  'isFailure',
  'fallback',
  'adaptiveConcurrency',
] as const;

const MIDDLEWARE_KEYS = [
  ...GUARD_KEYS,
  'key',
  'overload',
  'exempt',
  'routes',
  'maxRoutes',
  'clock',
  'registry',
  'redis',
  'logger',
] as const;

/** The default failure predicate: a 5xx status. */
export const defaultIsFailure: FailurePredicate = (statusCode) => statusCode >= 500;

export function resolveGuard(options: RouteGuardOptions, base: GuardConfig | undefined, prefix: string): GuardConfig {
  const policy = resolvePolicy(options, base?.policy, prefix);
  const timeoutMs =
    options.timeout === undefined
      ? base?.timeoutMs
      : options.timeout === false
        ? undefined
        : parseDuration(options.timeout, `${prefix}timeout`, { pkg: PKG, min: 1 });
  const maxConcurrent =
    options.maxConcurrent === undefined
      ? base?.maxConcurrent
      : options.maxConcurrent === false
        ? undefined
        : readInteger(PKG, `${prefix}maxConcurrent`, options.maxConcurrent, 1, 1);
  const maxQueue = readInteger(PKG, `${prefix}maxQueue`, options.maxQueue, base?.maxQueue ?? 0, 0);
  if (options.maxQueue !== undefined && options.maxQueue > 0 && maxConcurrent === undefined) {
    throw new RangeError(`${PKG}: option "${prefix}maxQueue" needs "maxConcurrent", got maxQueue ${options.maxQueue}`);
  }
  return {
    policy,
    timeoutMs,
    maxConcurrent,
    maxQueue,
    isFailure: readFunction(PKG, `${prefix}isFailure`, options.isFailure, base?.isFailure ?? defaultIsFailure),
    fallback: readFunction<FallbackHandler>(PKG, `${prefix}fallback`, options.fallback) ?? base?.fallback,
    adaptive: resolveAdaptive(options.adaptiveConcurrency, base?.adaptive, prefix),
  };
}

function resolveExempt(value: unknown): (path: string) => boolean {
  if (value === undefined) return () => false;
  if (!Array.isArray(value) || value.some((p) => typeof p !== 'string' || !p.startsWith('/'))) {
    throw optionTypeError(PKG, 'exempt', value, "an array of paths starting with '/', e.g. ['/health', '/metrics']");
  }
  return pathPrefixMatcher(value as string[]);
}

/**
 * Resolves the middleware's options.
 *
 * @throws {TypeError|RangeError} naming the option, the bad value and the accepted form
 */
export function resolveMiddlewareOptions(input: CircuitBreakerOptions | undefined): MiddlewareConfig {
  const options = checkOptionsObject(PKG, 'circuitBreaker', input, MIDDLEWARE_KEYS) as CircuitBreakerOptions;
  const defaults = resolveGuard(options, undefined, '');
  const routes = new Map<string, GuardConfig>();
  if (options.routes !== undefined) {
    if (typeof options.routes !== 'object' || options.routes === null || Array.isArray(options.routes)) {
      throw optionTypeError(
        PKG,
        'routes',
        options.routes,
        "an object of route pattern → options, e.g. { '/users/:id': { timeout: '2s' } }",
      );
    }
    for (const [pattern, routeOptions] of Object.entries(options.routes)) {
      const prefix = `routes[${JSON.stringify(pattern)}].`;
      const checked = checkOptionsObject(
        PKG,
        `circuitBreaker({ routes: { ${JSON.stringify(pattern)} } })`,
        routeOptions,
        GUARD_KEYS,
      );
      if (routeOptions === undefined)
        throw optionTypeError(PKG, prefix.slice(0, -1), routeOptions, 'an options object');
      routes.set(pattern, resolveGuard(checked, defaults, prefix));
    }
  }
  if (options.clock !== undefined && !isClock(options.clock)) {
    throw optionTypeError(PKG, 'clock', options.clock, 'an object with now(), setTimeout() and clearTimeout()');
  }
  if (
    options.registry !== undefined &&
    (typeof options.registry !== 'object' ||
      options.registry === null ||
      typeof (options.registry as Registry).getSingleMetric !== 'function')
  ) {
    throw optionTypeError(PKG, 'registry', options.registry, 'a prom-client Registry');
  }
  if (
    options.logger !== undefined &&
    (typeof options.logger !== 'object' ||
      options.logger === null ||
      typeof options.logger.warn !== 'function' ||
      typeof options.logger.error !== 'function')
  ) {
    throw optionTypeError(PKG, 'logger', options.logger, 'an object with warn() and error()');
  }
  return {
    defaults,
    routes,
    key: readFunction(PKG, 'key', options.key),
    overload: resolveOverload(options.overload),
    isExempt: resolveExempt(options.exempt),
    maxRoutes: readInteger(PKG, 'maxRoutes', options.maxRoutes, 100, 1, 10_000),
    clock: options.clock ?? systemClock,
    registry: options.registry ?? createRegistry(),
    log: new OnceLogger(options.logger ?? consoleLogger),
  };
}
