/**
 * The per-route decorators. Each one works on a controller class (every route of it) and
 * on a route method (that route only); the method's wins over the class's.
 *
 * They only record options (Reflect metadata, Nest's `SetMetadata` idiom): `PerfstackModule`
 * reads them once, when the app starts, into its route table (routes.ts).
 */
import { cache, type RouteCacheOptions } from '@perfstack/cache';
import type { RouteGuardOptions } from '@perfstack/circuit-breaker';
import type { RateLimitOptions } from '@perfstack/rate-limit';

const PKG = '@perfstack/nestjs';

/** Metadata keys (on the class or the method). */
export const PERFSTACK_CACHE = 'perfstack:cache';
export const PERFSTACK_NO_CACHE = 'perfstack:no-cache';
export const PERFSTACK_RATE_LIMIT = 'perfstack:rate-limit';
export const PERFSTACK_CIRCUIT_BREAKER = 'perfstack:circuit-breaker';
export const PERFSTACK_SKIP = 'perfstack:skip';

/** Options of {@link CacheResponse}: the route cache's options (`cache()` of @perfstack/cache) but `store`. */
export type CacheResponseOptions = Omit<RouteCacheOptions, 'store'>;

/**
 * Options of {@link RateLimit}: a limit of its own for the route, instead of the module's
 * (`limit`, `window`/`windowMs`, `algorithm`, `limits`, `keyGenerator`, `cost`, ...). Options
 * not given are taken from the module's `rateLimit` options (but its limits).
 */
export type RateLimitRouteOptions = Omit<RateLimitOptions, 'redis' | 'registry' | 'logger' | 'clock'>;

/** Options of {@link CircuitBreaker}: the breaker's per-route options (`timeout`, `failureThreshold`, ...). */
export type CircuitBreakerRouteOptions = RouteGuardOptions;

type AnyDecorator = ClassDecorator & MethodDecorator;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkObject(name: string, options: unknown): Record<string, unknown> {
  if (options === undefined) return {};
  if (!isObject(options)) {
    throw new TypeError(
      `${PKG}: @${name}() takes an options object, got ${Array.isArray(options) ? 'an array' : typeof options}`,
    );
  }
  return options;
}

/** Defines `key` on the method (method decorator) or on the class (class decorator). */
function setMetadata(name: string, key: string, value: unknown): AnyDecorator {
  return function perfstackDecorator(target: object, property?: string | symbol, descriptor?: PropertyDescriptor) {
    if (descriptor !== undefined) {
      if (typeof descriptor.value !== 'function') {
        throw new TypeError(
          `${PKG}: @${name}() decorates controller classes and route methods, not ${String(property)}`,
        );
      }
      Reflect.defineMetadata(key, value, descriptor.value);
      return descriptor;
    }
    if (property !== undefined) {
      throw new TypeError(`${PKG}: @${name}() decorates controller classes and route methods, not ${String(property)}`);
    }
    Reflect.defineMetadata(key, value, target);
    return target;
  } as AnyDecorator;
}

/**
 * Caches the route's GET (and HEAD) answers in the module's response cache, like `cache()`
 * in front of an Express route. On a controller, every GET route of it.
 *
 * @param options `{ ttl, tags, vary, staleWhileRevalidate, staleIfError, key, private, overrideFreshness }`
 * @throws {TypeError|RangeError} on a bad or unknown option, when the class is defined
 * @example
 * \@Get(':id') \@CacheResponse({ ttl: '5m', tags: ['products'] })
 * get(\@Param('id') id: string) { ... }
 */
export function CacheResponse(options?: CacheResponseOptions): AnyDecorator {
  const checked = checkObject('CacheResponse', options);
  if ('store' in checked) {
    throw new TypeError(`${PKG}: @CacheResponse() has no "store" option: routes use the module's cache`);
  }
  // Validates every option now (unknown keys, durations, tags), as `cache()` does.
  cache(checked as RouteCacheOptions);
  return setMetadata('CacheResponse', PERFSTACK_CACHE, Object.freeze({ ...checked }));
}

/**
 * The route is never cached: the cache layer does nothing for it (no lookup, no store, no
 * `X-Cache`), whatever the controller's `@CacheResponse()` or the response's Cache-Control say.
 */
export function NoCache(): AnyDecorator {
  return setMetadata('NoCache', PERFSTACK_NO_CACHE, true);
}

/**
 * A rate limit of the route's own, replacing the module's for it (its own counters, its own
 * `RateLimit-Policy`). On a controller, for each of its routes (each counted apart).
 *
 * @param options the options of `rateLimit()`; those not given come from the module's `rateLimit`
 * @example \@Post() \@RateLimit({ limit: 10, window: '1m' }) create() { ... }
 */
export function RateLimit(options: RateLimitRouteOptions): AnyDecorator {
  const checked = checkObject('RateLimit', options);
  if (options === undefined)
    throw new TypeError(`${PKG}: @RateLimit() needs options, e.g. { limit: 10, window: '1m' }`);
  for (const key of ['redis', 'registry', 'logger', 'clock']) {
    if (key in checked) throw new TypeError(`${PKG}: @RateLimit() has no "${key}" option: the module's is used`);
  }
  return setMetadata('RateLimit', PERFSTACK_RATE_LIMIT, Object.freeze({ ...checked }));
}

/**
 * Circuit-breaker settings of the route's own (`timeout`, `failureThreshold`, `resetTimeout`,
 * `maxConcurrent`, ...), over the module's `circuitBreaker` options.
 *
 * @example \@Get('report') \@CircuitBreaker({ timeout: '10s', failureThreshold: 3 }) report() { ... }
 */
export function CircuitBreaker(options: CircuitBreakerRouteOptions): AnyDecorator {
  const checked = checkObject('CircuitBreaker', options);
  if (options === undefined) throw new TypeError(`${PKG}: @CircuitBreaker() needs options, e.g. { timeout: '5s' }`);
  return setMetadata('CircuitBreaker', PERFSTACK_CIRCUIT_BREAKER, Object.freeze({ ...checked }));
}

/**
 * The route bypasses the whole stack: no timing, cache, size limit, log, headers, CORS,
 * rate limit or breaker (a webhook with its own signature check, a long-poll, a stream).
 */
export function SkipPerfstack(): AnyDecorator {
  return setMetadata('SkipPerfstack', PERFSTACK_SKIP, true);
}
