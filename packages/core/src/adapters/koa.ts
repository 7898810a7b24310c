/**
 * Runs a perfstack (Connect-style) middleware as Koa middleware.
 *
 * The middleware sees `ctx.req`/`ctx.res`. When it calls `next()`, the rest of the Koa
 * chain runs and Koa writes the response as usual (through the same patched `res`, so
 * response hooks see it). When it answers by itself (a cache hit, a 429), the adapter
 * sets `ctx.respond = false` so Koa leaves the response alone.
 */
import { recordRequestError } from '../errors.js';
import { linkKoaContext } from '../route.js';
import type { Middleware } from '../types.js';

/** The parts of a Koa context the adapter uses (no dependency on Koa's types). */
export interface KoaLikeContext {
  readonly req: import('node:http').IncomingMessage;
  readonly res: import('node:http').ServerResponse;
  respond?: boolean;
  _matchedRoute?: unknown;
}

/** A Koa middleware. */
export type KoaMiddleware = (ctx: KoaLikeContext, next: () => Promise<unknown>) => Promise<void>;

/** Marks what {@link toKoa} made, so wrapping it again is a no-op. */
const KOA_NATIVE = Symbol.for('perfstack.koaNative');

/** True when `fn` is a Koa middleware made by {@link toKoa}. */
function isKoaMiddleware(fn: unknown): fn is KoaMiddleware {
  return typeof fn === 'function' && (fn as { [KOA_NATIVE]?: true })[KOA_NATIVE] === true;
}

/** Marks a middleware `toKoa()` made, so wrapping it again hands it back unchanged. */
function markKoa<T extends KoaMiddleware>(middleware: T): T {
  Object.defineProperty(middleware, KOA_NATIVE, { value: true });
  return middleware;
}

/**
 * Wraps a Connect-style middleware for Koa. A middleware `toKoa` made already (perfstack/koa's
 * `cache()` is one) is returned as it is.
 *
 * @param middleware a perfstack middleware
 * @returns a Koa middleware
 * @example app.use(toKoa(performanceStack()))
 */
export function toKoa(middleware: Middleware | KoaMiddleware): KoaMiddleware {
  if (isKoaMiddleware(middleware)) return middleware;
  const connect = middleware as Middleware;
  return markKoa(function perfstackKoa(ctx: KoaLikeContext, next: () => Promise<unknown>): Promise<void> {
    linkKoaContext(ctx.req, ctx);
    return new Promise<void>((resolve, reject) => {
      const res = ctx.res;
      let settled = false;
      const answered = () => {
        if (settled) return;
        settled = true;
        cleanup();
        ctx.respond = false;
        resolve();
      };
      const cleanup = () => {
        res.removeListener('finish', answered);
        res.removeListener('close', answered);
      };
      res.once('finish', answered);
      res.once('close', answered);
      try {
        connect(ctx.req, res, (error?: unknown) => {
          if (settled) return;
          settled = true;
          cleanup();
          if (error !== undefined && error !== null) reject(error);
          else
            next().then(
              () => resolve(),
              (thrown: unknown) => {
                // What the rest of the chain threw, for the layers judging the outcome (the breaker).
                recordRequestError(ctx.req, thrown);
                reject(thrown);
              },
            );
        });
      } catch (thrown) {
        if (!settled) {
          settled = true;
          cleanup();
          reject(thrown);
        }
      }
    });
  });
}
