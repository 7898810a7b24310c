/**
 * Errors thrown behind the stack on Koa, seen before an app's error middleware swallows them.
 *
 * On Express an error travels through `next(err)` to the error handlers, which core wraps
 * (`gateExpressErrorHandlers`), so the breaker sees a body parser's 400 even when the app's
 * handler answers it with 500. On Koa the error travels as a promise rejection up the
 * middleware chain, and a middleware placed after the stack
 * (`try { await next() } catch (err) { ctx.status = 500 }`) catches it before it comes back to
 * the stack: the stack saw a bare 500 and the route's breaker counted a client's bad request
 * as a fault.
 *
 * koa-compose flattens `app.middleware` into its own array when `app.callback()` runs, so the
 * chain cannot be changed in place. Instead, on the first request the stack sees from an app,
 * every middleware after the stack is wrapped to record what it throws (core's
 * `recordRequestError`: the first error of a request, the one the others follow from), the
 * list is composed with the app's own `compose`, and the app's `handleRequest` runs that
 * composition from then on. The first request of an app still runs the chain it was given.
 * An app whose chain is not the one composed from `app.middleware` (a `koa-mount`ed sub-app,
 * which its parent composes) is left alone.
 */
import { recordRequestError } from '../errors.js';
import type { KoaLikeContext, KoaMiddleware } from './koa.js';

type KoaNext = () => Promise<unknown>;
type AnyKoaMiddleware = (ctx: KoaLikeContext, next: KoaNext) => unknown;

interface KoaAppLike {
  middleware?: unknown;
  compose?: unknown;
  handleRequest?: unknown;
}

const WATCHED = Symbol.for('perfstack.koaErrorsWatched');
const RECORDING = Symbol.for('perfstack.koaRecordsErrors');

function recordAndThrow(req: KoaLikeContext['req'], error: unknown): never {
  recordRequestError(req, error);
  throw error;
}

/** `fn`, recording what it throws or rejects with on the request. */
function recordingErrors(fn: AnyKoaMiddleware): AnyKoaMiddleware {
  if ((fn as { [RECORDING]?: true })[RECORDING] === true) return fn;
  const wrapped = function perfstackRecordsErrors(ctx: KoaLikeContext, next: KoaNext): unknown {
    let result: unknown;
    try {
      result = fn(ctx, next);
    } catch (error) {
      recordAndThrow(ctx.req, error);
    }
    if (result instanceof Promise) return result.catch((error: unknown) => recordAndThrow(ctx.req, error));
    return result;
  };
  Object.defineProperty(wrapped, RECORDING, { value: true });
  Object.defineProperty(wrapped, 'name', { value: fn.name });
  return wrapped;
}

/**
 * Once per Koa app (from `ctx.app`): makes the errors thrown by the middleware after `self`
 * visible to the stack's layers, however the app's own error middleware answers them.
 *
 * @param ctx a context of the app
 * @param self the stack's middleware, as registered with `app.use`
 */
export function watchKoaErrors(ctx: KoaLikeContext, self: KoaMiddleware): void {
  const app = (ctx as KoaLikeContext & { app?: KoaAppLike & { [WATCHED]?: true } }).app;
  if (app === undefined || app === null || app[WATCHED] === true) return;
  app[WATCHED] = true;
  const { middleware, compose, handleRequest } = app;
  if (!Array.isArray(middleware) || typeof compose !== 'function' || typeof handleRequest !== 'function') return;
  const index = middleware.indexOf(self);
  if (index === -1 || index === middleware.length - 1) return;
  if (!middleware.every((fn) => typeof fn === 'function')) return;
  const list = middleware.map((fn: AnyKoaMiddleware, i) => (i > index ? recordingErrors(fn) : fn));
  const composed = compose.call(app, list);
  const original = handleRequest as (this: unknown, context: unknown, fn: unknown) => unknown;
  app.handleRequest = function perfstackHandleRequest(this: unknown, context: unknown, _fn: unknown): unknown {
    return original.call(this, context, composed);
  };
}
