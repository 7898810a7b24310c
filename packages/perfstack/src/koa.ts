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
import type { ServerResponse } from 'node:http';
import { cache as connectCache, type RouteCacheOptions } from '@perfstack/cache';
import { type KoaLikeContext, type KoaMiddleware, toKoa, watchKoaErrors } from '@perfstack/core';
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

/** Headers the stack sets that every answer keeps, Koa's error answers included. */
const STACK_HEADERS =
  /^(x-request-id|content-security-policy|cross-origin-|origin-agent-cluster|referrer-policy|strict-transport-security|x-content-type-options|x-dns-prefetch-control|x-download-options|x-frame-options|x-permitted-cross-domain-policies|x-xss-protection|ratelimit|retry-after|access-control-|vary)/;

/** Copies the stack's headers onto `error.headers` (the error's own win), for Koa's `ctx.onerror`. */
function keepStackHeaders(res: ServerResponse, error: unknown): void {
  if (typeof error !== 'object' || error === null || res.headersSent) return;
  const kept: Record<string, unknown> = {};
  for (const name of res.getHeaderNames()) if (STACK_HEADERS.test(name)) kept[name] = res.getHeader(name);
  try {
    const own = (error as { headers?: unknown }).headers;
    (error as { headers?: unknown }).headers = typeof own === 'object' && own !== null ? { ...kept, ...own } : kept;
  } catch {
    // a frozen error: Koa answers it without the stack's headers
  }
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
  // through the stack before Koa answers it: it goes on the access line with its own
  // stack, and the headers the stack owes every response (request id, security headers,
  // rate-limit and CORS headers) ride on `err.headers`, which Koa sets after it clears the
  // response's headers for its error answer.
  const middleware = function perfstackKoaStack(ctx: KoaLikeContext, next: () => Promise<unknown>): Promise<void> {
    // What the middleware after the stack throws reaches the breaker even when an error
    // middleware there answers it (from the app's second request on; see core's koa-errors.ts).
    watchKoaErrors(ctx, middleware);
    return connect(ctx, next).catch((error: unknown) => {
      logger?.recordError(ctx.req, error);
      keepStackHeaders(ctx.res, error);
      throw error;
    });
  } as KoaPerformanceStack;
  // Koa-native already: `toKoa(stack)` hands it back unchanged (core's marker).
  Object.defineProperty(middleware, Symbol.for('perfstack.koaNative'), { value: true });
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
