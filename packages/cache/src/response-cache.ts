/**
 * `responseCache()`: the global layer. A Connect middleware that also carries the
 * cache's data methods (`stats`, `invalidate`, `health`) and `close`, so it is the
 * preset's `CacheSource` and a `ClosableMiddleware` at once.
 */

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CacheSource, CacheStats, ClosableMiddleware, HealthCheck, NextFunction } from '@perfstack/core';
import { parseDuration, warmShapes } from '@perfstack/core';
import { CacheEngine } from './engine.js';
import { PKG, type ResponseCacheOptions, resolveOptions } from './options.js';
import { type WarmTarget, warmUrls } from './warm.js';

/** Where `cache({ store })` finds the engine of an instance. */
export const ENGINE = Symbol.for('perfstack.cache.engine');

/** What `responseCache()` returns. */
export interface ResponseCache extends ClosableMiddleware, CacheSource {
  /** Hits, misses, stale, bypass, evictions, entries, bytes, hit ratio; overall and per route. */
  stats(): CacheStats;
  /**
   * Removes entries by exact key (the request target, e.g. `/products?page=2`), by tags,
   * or by key prefix, on every instance. Resolves with the number of keys removed.
   */
  invalidate(selector: {
    readonly key?: string;
    readonly tags?: readonly string[];
    readonly prefix?: string;
  }): Promise<number>;
  /**
   * Fills entries on demand by asking the app for each URL (absolute, e.g.
   * `http://127.0.0.1:3000/products`, or `{ url, headers: { host: 'shop.example' } }`) as a
   * forced miss; resolves with how many the cache now holds. `timeout` per request, ms.
   */
  warm(urls: readonly WarmTarget[], options?: { readonly timeout?: number }): Promise<number>;
  /**
   * With Redis, resolves once the most read URLs were loaded into memory at start (warm
   * start, option `warmStart`), with how many entries; at once with 0 otherwise. Requests
   * are served meanwhile; it waits at most 5 s for Redis to connect.
   */
  readonly ready: Promise<number>;
  /** `ok`, or `degraded` while a configured Redis is down. */
  health(): HealthCheck;
  /**
   * Runtime ttl (the dashboard's settings): of one route (its pattern, `/products/:id`) or,
   * without `route`, the layer's default; for responses stored from now on. `undefined` goes
   * back to the configured ttl. Validated like the option (ms or `'5m'`).
   *
   * @throws {TypeError|RangeError} on a bad duration or route
   */
  setTtl(ttl: number | string | undefined, route?: string): void;
  /** The ttl (ms) now in force for `route` (a `cache()` route's own, else the default), or the default. */
  ttlOf(route?: string): number;
  /** The `cache()` routes seen so far (after their first miss): their own ttl (ms) and whether they have tags. */
  cachedRoutes(): ReadonlyMap<string, { readonly ttl: number | undefined; readonly tags: boolean }>;
  /** Stops pub/sub listening and closes a Redis connection the cache made itself. */
  close(): Promise<void>;
  /** @internal */
  readonly [ENGINE]: CacheEngine;
}

/**
 * Makes the response cache.
 *
 * @param options see {@link ResponseCacheOptions}; all optional
 * @returns the middleware, with `stats()`, `invalidate()`, `health()` and `close()`
 * @throws {TypeError|RangeError} on a bad or unknown option, naming it
 * @example
 * const responses = responseCache({ ttl: '1m', redis: process.env.REDIS_URL });
 * app.use(responses);
 * app.get('/products', cache({ ttl: '5m', tags: ['products'] }), listProducts);
 * await responses.invalidate({ tags: ['products'] });
 */
export function responseCache(options?: ResponseCacheOptions): ResponseCache {
  const engine = new CacheEngine(resolveOptions(options));
  const middleware = function responseCacheMiddleware(
    req: IncomingMessage,
    res: ServerResponse,
    next: NextFunction,
  ): void {
    warmShapes(req, res);
    engine.handle(req, res, next);
  };
  return Object.assign(middleware, {
    stats: () => engine.stats(),
    invalidate: (selector: Parameters<ResponseCache['invalidate']>[0]) => engine.invalidate(selector),
    warm: (urls: readonly WarmTarget[], options?: { readonly timeout?: number }) =>
      warmUrls(engine, urls, options?.timeout ?? 10_000),
    ready: engine.ready,
    health: () => engine.health(),
    setTtl: (ttl: number | string | undefined, route?: string) => {
      if (route !== undefined && (typeof route !== 'string' || !route.startsWith('/') || route.length > 1024)) {
        throw new TypeError(`${PKG}: a route must be a pattern starting with "/", got ${String(route).slice(0, 40)}`);
      }
      engine.setTtl(ttl === undefined ? undefined : parseDuration(ttl, 'ttl', { pkg: PKG, min: 1 }), route);
    },
    ttlOf: (route?: string) => engine.ttlOf(route),
    cachedRoutes: () => engine.cachedRoutes,
    close: () => engine.close(),
    [ENGINE]: engine,
  });
}

/** True for what {@link responseCache} returned. */
export function isResponseCache(value: unknown): value is ResponseCache {
  return typeof value === 'function' && (value as { [ENGINE]?: unknown })[ENGINE] instanceof CacheEngine;
}
