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

/**
 * A class method that handles a request: its first two parameters are the request and the
 * response, typed as Node's (`IncomingMessage`, `ServerResponse`) or as a framework's
 * subtypes of them (Express's `Request`, `Response`); then `next`, or nothing.
 */
export type RouteHandler<
  This,
  Req extends IncomingMessage = IncomingMessage,
  Res extends ServerResponse = ServerResponse,
  Rest extends unknown[] = [next: NextFunction],
  Result = unknown,
> = (this: This, req: Req, res: Res, ...rest: Rest) => Result;

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  value !== undefined && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';

/**
 * Caches a class-based controller method, like `cache()` in front of it.
 *
 * The method keeps its own type (Express's `Request`/`Response`, Node's, or any subtypes of
 * them), so a route mounts it as it would the undecorated method. The decorated method
 * returns a promise: it resolves with the method's own result once it ran, or never when the
 * cache answered. Errors (the cache's, a throw, a rejection) go to `next` when the method was
 * given one, else reject that promise (Express 5 routes it to the error handlers).
 *
 * @param options the same options as {@link cache}
 * @returns a standard (TC39) method decorator; no `experimentalDecorators` needed
 * @throws {TypeError|RangeError} on a bad option (when the class is defined)
 * @example
 * class Products {
 *   @Cacheable({ ttl: '5m', tags: ['products'] })
 *   list(req: Request, res: Response) { res.json(products) }
 * }
 * const products = new Products();
 * app.get('/products', (req, res, next) => products.list(req, res));
 */
export function Cacheable(options?: RouteCacheOptions) {
  const middleware = cache(options);
  return function cacheableDecorator<
    This,
    Req extends IncomingMessage,
    Res extends ServerResponse,
    Rest extends unknown[],
    Result,
  >(
    method: RouteHandler<This, Req, Res, Rest, Result>,
    context: ClassMethodDecoratorContext<This, RouteHandler<This, Req, Res, Rest, Result>>,
  ): RouteHandler<This, Req, Res, Rest, Result> {
    if (context.kind !== 'method') {
      throw new TypeError(`${PKG}: @Cacheable() decorates class methods, not a ${String(context.kind)}`);
    }
    return function cached(this: This, req: Req, res: Res, ...rest: Rest): Result {
      const next = typeof rest[0] === 'function' ? (rest[0] as NextFunction) : undefined;
      return new Promise<unknown>((resolve, reject) => {
        const fail = (error: unknown) => {
          if (next === undefined) {
            reject(error);
            return;
          }
          next(error);
          resolve(undefined);
        };
        middleware(req, res, (error?: unknown) => {
          if (error !== undefined && error !== null) {
            fail(error);
            return;
          }
          let result: unknown;
          try {
            result = method.call(this, req, res, ...rest);
          } catch (thrown) {
            fail(thrown);
            return;
          }
          if (isThenable(result)) result.then(resolve, fail);
          else resolve(result);
        });
      }) as Result;
    };
  };
}
