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
import { IncomingMessage, OutgoingMessage, ServerResponse, validateHeaderName, validateHeaderValue } from 'node:http';
import { Socket } from 'node:net';
import type { Middleware, NextFunction } from '@perfstack/core';

/**
 * Writing the same static headers on every response: `setHeader` checks the name and the
 * value (two regular expressions), lower-cases the name and stores `[name, value]` under the
 * lower-cased name in the response's own header map (`OutgoingMessage[kOutHeaders]`,
 * null-prototype object). For headers whose names and values were checked once, at
 * construction, the replay stores the same entries in the same map directly: `getHeader`,
 * `hasHeader`, `getHeaderNames`, `removeHeader`, `appendHeader` and the head Node writes
 * read that map, so they see exactly what `setHeader` would have left (a fresh entry per
 * response: `appendHeader` changes entries in place). `setHeader` itself runs instead when
 * the map is not where Node 18–24 keep it, when the response's `setHeader` is not Node's own
 * (an app that wraps it sees every header), or once the head is sent (it then throws, as before).
 */
const nodeSetHeader = OutgoingMessage.prototype.setHeader;

/** The symbol of Node's header map (`null` when not found), read off a response made for it. */
const headerMapKey: symbol | null = (() => {
  try {
    const probe = new ServerResponse(new IncomingMessage(new Socket()));
    for (const key of Object.getOwnPropertySymbols(probe)) {
      if (key.description === 'kOutHeaders')
        return (probe as unknown as Record<symbol, unknown>)[key] === null ? key : null;
    }
  } catch {
    // Not constructible this way on this Node: setHeader it is.
  }
  return null;
})();

/** Static headers, checked once: `[lower-case name, name, value]` each. */
type Entries = ReadonlyArray<readonly [lower: string, name: string, value: string]>;

/** The entries for `pairs` (`[name, value, ...]`), or `undefined` when a name or value is one `setHeader` refuses. */
function checkedEntries(pairs: readonly (readonly [string, unknown])[]): Entries | undefined {
  const entries: [string, string, string][] = [];
  for (const [name, value] of pairs) {
    if (typeof value !== 'string') return undefined;
    try {
      validateHeaderName(name);
      validateHeaderValue(name, value);
    } catch {
      return undefined;
    }
    entries.push([name.toLowerCase(), name, value]);
  }
  return entries;
}

/** Sets `entries` on `res` as `setHeader` would, one by one. */
function setEntries(res: ServerResponse, entries: Entries): void {
  const key = headerMapKey;
  // A response that is not Node's (a recorder, a mock) has another `setHeader`.
  if (key === null || res.setHeader !== nodeSetHeader || res.headersSent) {
    for (const [, name, value] of entries) res.setHeader(name, value);
    return;
  }
  const holder = res as unknown as Record<symbol, Record<string, [string, string]> | null>;
  let map = holder[key];
  if (map === null || map === undefined) {
    map = Object.create(null) as Record<string, [string, string]>;
    holder[key] = map;
  }
  for (let i = 0; i < entries.length; i++) {
    const [lower, name, value] = entries[i] as Entries[number];
    map[lower] = [name, value];
  }
}

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
  // Removals (helmet's X-Powered-By) first, then the headers set, in their order: the same
  // headers in the same order as the recorded sequence when no name is both set and removed.
  const removals = operations.filter(([, value]) => value === undefined).map(([name]) => name);
  const sets = operations.filter(([, value]) => value !== undefined);
  const removed = new Set(removals.map((name) => name.toLowerCase()));
  const entries = sets.some(([name]) => removed.has(name.toLowerCase())) ? undefined : checkedEntries(sets);
  if (entries !== undefined) {
    return function helmetHeaders(_req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
      for (let i = 0; i < removals.length; i++) res.removeHeader(removals[i] as string);
      setEntries(res, entries);
      next();
    };
  }
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

/**
 * The headers `middleware` (helmet replayed, or CORS) sets on an ordinary request's response,
 * as flat `[name, value, ...]` pairs, recorded once: for perfstack's early refusals, which
 * write a whole response with one `writeHead`. `undefined` when it reads anything of the
 * request but its method (and, with `originIrrelevant`, its `Origin`), touches the response
 * otherwise than through its headers, or does not call `next()` at once: it then runs on the
 * response itself.
 *
 * @param originIrrelevant the caller knows the headers do not depend on `Origin` (CORS with a
 *   fixed origin setting reads it, but sets the same headers whatever it is)
 */
export function recordedHeaders(middleware: Middleware, originIrrelevant = false): string[] | undefined {
  const set = new Map<string, [string, string]>();
  let valid = true;
  const response = new Proxy(
    {},
    {
      get(_target, property) {
        if (property === 'setHeader') {
          return (name: string, value: unknown) => {
            if (typeof value === 'string' || typeof value === 'number')
              set.set(name.toLowerCase(), [name, String(value)]);
            else valid = false;
          };
        }
        if (property === 'removeHeader') return (name: string) => set.delete(name.toLowerCase());
        if (property === 'getHeader') return (name: string) => set.get(name.toLowerCase())?.[1];
        valid = false;
        return undefined;
      },
      set() {
        valid = false;
        return true;
      },
    },
  );
  const headers = new Proxy({} as Record<string, unknown>, {
    get(_target, property) {
      if (property !== 'origin' || !originIrrelevant) valid = false;
      return undefined;
    },
  });
  const request = new Proxy(
    {},
    {
      get(_target, property) {
        if (property === 'method') return 'GET';
        if (property === 'headers') return headers;
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
  if (!valid || !nextCalled) return undefined;
  return [...set.values()].flat();
}

/**
 * Returns a middleware that, for every request but a preflight (`OPTIONS`), sets what the
 * `cors` middleware sets from pairs recorded once (`recordedHeaders`), instead of running
 * cors's per-request option merge and callbacks; `corsMiddleware` itself for preflights, for a
 * `Vary` it would have to merge with one already on the response, and when its headers depend
 * on the request (`fixed` false: an origin list, a RegExp, a function) or could not be recorded.
 *
 * @param corsMiddleware `cors(options)`
 * @param fixed the `origin` setting gives the same headers whatever the request's `Origin`
 */
export function staticCors(corsMiddleware: Middleware, fixed: boolean): Middleware {
  const pairs = fixed ? recordedHeaders(corsMiddleware, true) : undefined;
  if (pairs === undefined) return corsMiddleware;
  const setsVary = pairs.some((name, i) => i % 2 === 0 && name.toLowerCase() === 'vary');
  const grouped: [string, string][] = [];
  for (let i = 0; i < pairs.length; i += 2) grouped.push([pairs[i] as string, pairs[i + 1] as string]);
  const entries = checkedEntries(grouped);
  if (entries === undefined) return corsMiddleware;
  return function corsHeaders(req: IncomingMessage, res: ServerResponse, next: NextFunction): void {
    if (req.method === 'OPTIONS' || (setsVary && res.hasHeader('vary'))) {
      corsMiddleware(req, res, next);
      return;
    }
    setEntries(res, entries);
    next();
  };
}
