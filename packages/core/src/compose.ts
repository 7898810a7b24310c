/**
 * Composes middleware into one, in order. `performanceStack()` is such a composition;
 * the result is itself a Connect middleware that Express, the Koa adapter and the
 * `node:http` adapter all accept.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Middleware, NextFunction } from './types.js';

/**
 * Runs `middleware` in order; an error passed to `next` skips the rest and goes to the
 * final `next`. A middleware that throws synchronously is treated as `next(error)`.
 *
 * @param middleware the layers, outermost first
 * @returns one middleware
 */
export function compose(middleware: readonly Middleware[]): Middleware {
  const layers = [...middleware];
  if (layers.length === 0)
    return function emptyStack(_req, _res, next) {
      next();
    };
  if (layers.length === 1) return layers[0] as Middleware;
  return function composed(req: IncomingMessage, res: ServerResponse, done: NextFunction): void {
    let index = 0;
    const step: NextFunction = (error?: unknown) => {
      if (error !== undefined && error !== null) {
        done(error);
        return;
      }
      const layer = layers[index++];
      if (layer === undefined) {
        done();
        return;
      }
      try {
        layer(req, res, step);
      } catch (thrown) {
        done(thrown);
      }
    };
    step();
  };
}
