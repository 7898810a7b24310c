/**
 * perfstack on Koa.
 *
 * ```ts
 * import Koa from 'koa';
 * import { performanceStack } from 'perfstack/koa';
 * const app = new Koa();
 * const stack = performanceStack();
 * app.use(stack);              // the layers, in the documented order
 * app.use(stack.endpoints());  // /dashboard, /metrics, /health
 * ```
 *
 * The same layers as the Express preset, run through core's Koa adapter. `cache()` here is
 * the route cache as Koa middleware: `router.get('/products', cache({ ttl: '5m' }), list)`.
 */
import { cache as connectCache, type RouteCacheOptions } from '@perfstack/cache';
import { type KoaLikeContext, type KoaMiddleware, toKoa } from '@perfstack/core';
import { performanceStack as buildStack, type PerformanceStack, type PerformanceStackOptions } from './stack.js';

export { type KoaMiddleware, toKoa } from '@perfstack/core';
export * from './index.js';

/**
 * The route cache as Koa middleware (the main entry's `cache()` is Connect-style). Wrapping
 * it in `toKoa()` as well is harmless: `toKoa` hands Koa middleware back unchanged.
 *
 * @param options the route's cache options (`ttl`, `tags`, `key`, `vary`, `staleIfError`, ...)
 * @returns a Koa middleware
 * @example router.get('/products', cache({ ttl: '5m', tags: ['products'] }), listProducts);
 */
export function cache(options?: RouteCacheOptions): KoaMiddleware {
  return toKoa(connectCache(options));
}

/** The Koa form of the stack. */
export interface KoaPerformanceStack extends KoaMiddleware {
  /** The dashboard, `/metrics` and `/health` at the stack's paths, as one Koa middleware. */
  endpoints(): KoaMiddleware;
  /** The underlying Connect-style stack (`cache`, `layers`, `registry`, ...). */
  readonly stack: PerformanceStack;
  readonly cache: PerformanceStack['cache'];
  close(): Promise<void>;
}

/**
 * Builds the stack ({@link buildStack} in the main entry) as Koa middleware.
 *
 * @param options the same options as the Express preset
 * @returns a Koa middleware with `.endpoints()`, `.cache`, `.stack` and `.close()`
 */
export function performanceStack(options?: PerformanceStackOptions): KoaPerformanceStack {
  const stack = buildStack(options);
  const connect = toKoa(stack);
  const logger = stack.layers.logger;
  // An error thrown downstream (a handler, `ctx.throw`, koa-compose's flow) passes back
  // through the stack before Koa answers it: it goes on the access line with its own stack.
  const middleware = (
    logger === undefined
      ? connect
      : function perfstackKoaStack(ctx: KoaLikeContext, next: () => Promise<unknown>): Promise<void> {
          return connect(ctx, next).catch((error: unknown) => {
            logger.recordError(ctx.req, error);
            throw error;
          });
        }
  ) as KoaPerformanceStack;
  // Koa-native already: `toKoa(stack)` hands it back unchanged (core's marker).
  if (middleware !== connect) Object.defineProperty(middleware, Symbol.for('perfstack.koaNative'), { value: true });
  Object.defineProperties(middleware, {
    stack: { value: stack },
    cache: { value: stack.cache },
    close: { value: () => stack.close() },
    endpoints: {
      value: (): KoaMiddleware => {
        const dashboard = toKoa(stack.dashboard({ basePath: stack.paths.dashboard }));
        const metrics = toKoa(stack.metrics());
        const health = toKoa(stack.health());
        // Routed by the same matcher that exempts them (any case, one trailing slash; GET and
        // HEAD for /metrics and /health), so what is exempt is exactly what is served here.
        return function perfstackEndpoints(ctx: KoaLikeContext, next: () => Promise<unknown>): Promise<void> {
          const endpoint = stack.endpointOf(ctx.req);
          if (endpoint === 'metrics') return metrics(ctx, next);
          if (endpoint === 'health') return health(ctx, next);
          if (endpoint === 'dashboard') return dashboard(ctx, next);
          return next().then(() => undefined);
        };
      },
    },
  });
  return middleware;
}
