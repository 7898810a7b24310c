/**
 * helmet, replayed: the headers helmet sets are worked out once, at construction, and each
 * request gets them from one loop instead of helmet's chain of a dozen middleware.
 *
 * helmet computes every header value when it is built, except Content-Security-Policy
 * directives given as functions (nonces), which it calls per request. So when no directive
 * is a function, running helmet once against a recording response gives exactly the
 * `setHeader`/`removeHeader` calls it makes for every request, in order. Anything else —
 * a function directive, helmet touching more than those two methods, or not calling
 * `next()` at once — keeps helmet's own middleware (house style rule 6: work at
 * construction, little per request).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Middleware, NextFunction } from '@perfstack/core';

type Operation = readonly [name: string, value: string | number | readonly string[] | undefined];

/** True when a CSP directive of `options` is (or holds) a function, i.e. computed per request. */
function hasDynamicDirective(options: object): boolean {
  const csp = (options as { contentSecurityPolicy?: unknown }).contentSecurityPolicy;
  if (typeof csp !== 'object' || csp === null) return false;
  const directives = (csp as { directives?: unknown }).directives;
  if (typeof directives !== 'object' || directives === null) return false;
  for (const value of Object.values(directives)) {
    if (typeof value === 'function') return true;
    if (Array.isArray(value) && value.some((item) => typeof item === 'function')) return true;
  }
  return false;
}

/**
 * The header operations `middleware` performs on a response, or `undefined` when it does
 * anything a replay could not reproduce.
 */
function record(middleware: Middleware): Operation[] | undefined {
  const operations: Operation[] = [];
  let valid = true;
  const response = new Proxy(
    {},
    {
      get(_target, property) {
        if (property === 'setHeader') {
          return (name: string, value: string | number | readonly string[]) => {
            operations.push([name, value]);
          };
        }
        if (property === 'removeHeader') {
          return (name: string) => {
            operations.push([name, undefined]);
          };
        }
        valid = false;
        return undefined;
      },
      set() {
        valid = false;
        return true;
      },
    },
  );
  const request = new Proxy(
    {},
    {
      get() {
        valid = false;
        return undefined;
      },
    },
  );
  let nextCalled = false;
  try {
    middleware(request as IncomingMessage, response as ServerResponse, (error?: unknown) => {
      if (error !== undefined) valid = false;
      nextCalled = true;
    });
  } catch {
    return undefined;
  }
  return valid && nextCalled ? operations : undefined;
}

/**
 * Returns a middleware that sets what `helmetMiddleware` (built with `options`) sets, from
 * operations recorded once; `helmetMiddleware` itself when its headers depend on the request.
 *
 * @param helmetMiddleware `helmet(options)`
 * @param options the options it was built with
 */
export function staticHeaders(helmetMiddleware: Middleware, options: object): Middleware {
  if (hasDynamicDirective(options)) return helmetMiddleware;
  const operations = record(helmetMiddleware);
  if (operations === undefined) return helmetMiddleware;
  const count = operations.length;
  return function helmetHeaders(_req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    for (let i = 0; i < count; i++) {
      const [name, value] = operations[i] as Operation;
      if (value === undefined) res.removeHeader(name);
      else res.setHeader(name, value);
    }
    next();
  };
}
