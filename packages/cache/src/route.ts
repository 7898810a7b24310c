/**
 * Per-route caching: the `cache()` route middleware and the `@Cacheable()` method
 * decorator (TC39 decorators, TypeScript 5, no `experimentalDecorators`).
 *
 * Under a global `responseCache()`, `cache()` tells that instance (found on the request)
 * that the route opts in, and with which ttl, tags, key and vary. Alone, it is a whole
 * cache for its route, on the instance given as `store` or on a shared in-memory one.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Middleware, type NextFunction, optionTypeError, warmShapes } from '@perfstack/core';
import { PKG, type RouteCacheOptions, resolveRouteOptions } from './options.js';
import { ENGINE, isResponseCache, type ResponseCache, responseCache } from './response-cache.js';
import { requestInstance, requestState } from './state.js';

let fallbackInstance: ResponseCache | undefined;

/** The in-memory instance `cache()` routes use when no global layer and no `store` is given. */
export function defaultCache(): ResponseCache {
  fallbackInstance ??= responseCache();
  return fallbackInstance;
}

/**
 * Opts a route in to caching.
 *
 * @param options `{ ttl, tags, key, vary, staleWhileRevalidate, staleIfError, private, store }`, all optional
 * @returns a route middleware
 * @throws {TypeError|RangeError} on a bad or unknown option, naming it
 * @example app.get('/products', cache({ ttl: '5m', tags: ['products'] }), listProducts)
 */
export function cache(options?: RouteCacheOptions): Middleware {
  const { store, ...route } = resolveRouteOptions(options, 'cache');
  if (store !== undefined && !isResponseCache(store)) {
    throw optionTypeError(PKG, 'store', store, 'what responseCache() returned');
  }
  const explicit = store === undefined ? undefined : (store as ResponseCache)[ENGINE];
  return function routeCache(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    warmShapes(req, res);
    const state = requestState(req);
    if (state !== undefined && (explicit === undefined || state.engine === explicit)) {
      if (state.served) return;
      state.engine.enterRoute(req, res, next, state, route);
      return;
    }
    const global = requestInstance(req);
    if (global.skipped || (explicit === undefined && global.engine !== undefined)) {
      // The global layer skipped this request, or let it by (unsafe method): nothing to do here.
      next();
      return;
    }
    (explicit ?? defaultCache()[ENGINE]).handleRoute(req, res, next, route);
  };
}

/** A class method that handles a request, Express-style. */
export type RouteHandler<This> = (this: This, req: IncomingMessage, res: ServerResponse, next: NextFunction) => unknown;

/**
 * Caches a class-based controller method, like `cache()` in front of it.
 *
 * @param options the same options as {@link cache}
 * @returns a standard method decorator
 * @throws {TypeError|RangeError} on a bad option (when the class is defined)
 * @example
 * class Products {
 *   @Cacheable({ ttl: '5m', tags: ['products'] })
 *   list(req, res) { res.json(products) }
 * }
 * app.get('/products', (req, res, next) => controller.list(req, res, next));
 */
export function Cacheable(options?: RouteCacheOptions) {
  const middleware = cache(options);
  return function cacheableDecorator<This, H extends RouteHandler<This>>(
    method: H,
    context: ClassMethodDecoratorContext<This, H>,
  ): H {
    if (context.kind !== 'method') {
      throw new TypeError(`${PKG}: @Cacheable() decorates class methods, not a ${String(context.kind)}`);
    }
    return function cached(this: This, req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
      middleware(req, res, (error?: unknown) => {
        if (error !== undefined && error !== null) {
          next(error);
          return;
        }
        const result = method.call(this, req, res, next);
        if (result !== undefined && result !== null && typeof (result as Promise<unknown>).then === 'function') {
          (result as Promise<unknown>).then(undefined, next);
        }
      });
    } as H;
  };
}
