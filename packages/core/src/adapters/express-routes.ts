/**
 * Resolves the full route pattern of an Express request *before* the router runs it, by
 * walking the app's router stack the way the router will: mounted routers are entered with
 * their mount pattern (`app.use('/users/:uid', router)` + `router.get('/posts/:pid')` →
 * `/users/:uid/posts/:pid`), routes answer for their methods (HEAD through GET), plain
 * middleware is passed over. Express 5 (router 2) keeps each layer's raw pattern; Express 4
 * keeps only a compiled RegExp, so the pattern of a mount is rebuilt from its match, each
 * parameter's captured value replaced by `:name` (lower-cased when the mount is
 * case-insensitive, Express's default, so `/Users/1` and `/users/1` share one name).
 *
 * Why before: the breaker, the timing labels, the rate limiter's route keys and the
 * dashboard must agree on one bounded name from a route's first request, and Express's own
 * `req.baseUrl` holds raw values (`/users/1000`), never the mount's pattern.
 *
 * Answers are cached per router (a bounded Map keyed by method and path, cleared when the
 * app's top-level stack changes), so a known path costs one Map lookup.
 */
import type { IncomingMessage } from 'node:http';

/** The parts of an Express 4 or router 2 layer this module reads. */
export interface ExpressLayer {
  handle: ((...args: unknown[]) => unknown) & { stack?: unknown };
  route?: ExpressRoute;
  /** Express 5 (router 2): the pattern the layer was made with. */
  rawPath?: unknown;
  /** Express 5 (router 2): a pure match. */
  matchers?: unknown;
  match?: (path: string) => unknown;
  /** Express 4: the compiled pattern and its parameter names. */
  regexp?: RegExp & { fast_slash?: boolean; fast_star?: boolean };
  keys?: ReadonlyArray<{ name: string | number }>;
}

export interface ExpressRoute {
  path?: unknown;
  _handlesMethod?: (method: string) => boolean;
  _handles_method?: (method: string) => boolean;
}

export interface ExpressRouter {
  stack: ExpressLayer[];
}

interface ExpressApp {
  _router?: ExpressRouter;
  router?: ExpressRouter;
  mountpath?: unknown;
}

/** Answers cached per router before the oldest half is dropped. */
const CACHE_SIZE = 2048;
/** How deep mounted routers are followed (a cycle guard). */
const MAX_DEPTH = 16;

interface RouterCache {
  /** The top-level stack length the answers were computed for. */
  length: number;
  readonly answers: Map<string, string | null>;
}

const caches = new WeakMap<object, RouterCache>();
/** Express 4 RegExps recompiled with the `d` flag (match indices). */
const indexed = new WeakMap<RegExp, RegExp>();

/** The router of an Express app (Express 4: `_router`; Express 5: `router`), if it has one. */
export function expressRouterOf(app: unknown): ExpressRouter | undefined {
  if (app === null || typeof app !== 'function') return undefined;
  const express = app as ExpressApp;
  // Express 4 creates `_router` lazily; Express 5's `router` getter creates it on first read.
  const router = '_router' in express ? express._router : express.router;
  return router !== undefined && router !== null && Array.isArray(router.stack) ? router : undefined;
}

/**
 * The full route pattern Express will run for this request, or `undefined` when no route
 * (only middleware: a catch-all, a proxy, a sub-app) would answer it.
 *
 * @param req a request inside an Express app (`req.app` set by Express)
 */
export function resolveExpressRoute(req: IncomingMessage): string | undefined {
  const app = (req as IncomingMessage & { app?: unknown }).app;
  const router = expressRouterOf(app);
  if (router === undefined) return undefined;
  const method = req.method ?? 'GET';
  const parent = (app as ExpressApp & { parent?: unknown }).parent;
  // The top-level app routes `originalUrl` (inside a mounted router `req.url` is cut short);
  // a sub-app routes what is left after its mount, and its mount path is the prefix.
  const topLevel = parent === undefined || parent === null;
  const original = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl;
  const path = pathname(topLevel && typeof original === 'string' ? original : req.url);
  let cache = caches.get(router);
  if (cache === undefined) {
    cache = { length: router.stack.length, answers: new Map() };
    caches.set(router, cache);
  } else if (cache.length !== router.stack.length) {
    cache.length = router.stack.length;
    cache.answers.clear();
  }
  const key = `${method} ${path}`;
  const cached = cache.answers.get(key);
  if (cached !== undefined) return cached ?? undefined;
  const mountpath = (app as ExpressApp).mountpath;
  const base = (req as IncomingMessage & { baseUrl?: unknown }).baseUrl;
  const prefix = topLevel ? '' : typeof mountpath === 'string' ? mountpath : typeof base === 'string' ? base : '';
  const found = walk(router.stack, path, method, 0);
  const answer = found === undefined ? null : join(prefix, found);
  if (cache.answers.size >= CACHE_SIZE) {
    let drop = CACHE_SIZE >> 1;
    for (const old of cache.answers.keys()) {
      cache.answers.delete(old);
      if (--drop === 0) break;
    }
  }
  cache.answers.set(key, answer);
  return answer ?? undefined;
}

/** Every layer of a router stack (and of the routers mounted in it), for callers that must see them all. */
export function* expressLayers(stack: readonly ExpressLayer[], depth = 0): Generator<ExpressLayer> {
  if (depth > MAX_DEPTH) return;
  for (const layer of stack) {
    yield layer;
    const inner = layer.handle?.stack;
    if (layer.route === undefined && Array.isArray(inner)) yield* expressLayers(inner as ExpressLayer[], depth + 1);
  }
}

function walk(stack: readonly ExpressLayer[], path: string, method: string, depth: number): string | undefined {
  if (depth > MAX_DEPTH) return undefined;
  for (const layer of stack) {
    const route = layer.route;
    const inner = layer.handle?.stack;
    // Plain middleware (not a route, not a router) never names a route: pass over it.
    if (route === undefined && !Array.isArray(inner)) continue;
    const match = matchLayer(layer, path);
    if (match === undefined) continue;
    if (route !== undefined) {
      if (!handlesMethod(route, method)) continue;
      const pattern = typeof route.path === 'string' ? route.path : match.pattern;
      if (pattern !== undefined) return pattern;
      continue;
    }
    let rest = path.slice(match.matched.length);
    if (rest === '' || rest[0] !== '/') rest = `/${rest}`;
    const found = walk(inner as ExpressLayer[], rest, method, depth + 1);
    if (found !== undefined) return join(match.pattern ?? match.matched, found);
  }
  return undefined;
}

function handlesMethod(route: ExpressRoute, method: string): boolean {
  try {
    if (typeof route._handlesMethod === 'function') return route._handlesMethod(method);
    if (typeof route._handles_method === 'function') return route._handles_method(method);
  } catch {
    return false;
  }
  return false;
}

/** What a layer matched: the concrete prefix, and the pattern when it can be named. */
interface LayerMatch {
  readonly matched: string;
  readonly pattern: string | undefined;
}

function matchLayer(layer: ExpressLayer, path: string): LayerMatch | undefined {
  if (layer.matchers !== undefined && typeof layer.match === 'function') {
    // router 2: a pure match that reports the raw pattern it matched with.
    let result: unknown;
    try {
      result = layer.match(path);
    } catch {
      return undefined;
    }
    if (result === false || result === null || typeof result !== 'object') return undefined;
    const { path: matched, pattern } = result as { path?: unknown; pattern?: unknown };
    return {
      matched: typeof matched === 'string' ? matched : '',
      pattern: typeof pattern === 'string' ? pattern : undefined,
    };
  }
  const regexp = layer.regexp;
  if (regexp === undefined) return undefined;
  if (regexp.fast_slash === true) return { matched: '', pattern: '' };
  if (regexp.fast_star === true) return { matched: path, pattern: '*' };
  let withIndices = indexed.get(regexp);
  if (withIndices === undefined) {
    withIndices = new RegExp(regexp.source, regexp.flags.includes('d') ? regexp.flags : `${regexp.flags}d`);
    indexed.set(regexp, withIndices);
  }
  withIndices.lastIndex = 0;
  const match = withIndices.exec(path);
  if (match === null) return undefined;
  return { matched: match[0], pattern: rebuild(match, layer.keys ?? [], regexp.flags.includes('i')) };
}

/**
 * Express 4: the pattern of a match, each captured parameter replaced by `:name`
 * (`/users/1000` matched by `/users/:uid` → `/users/:uid`). Unnamed captures (a RegExp
 * mount) cannot be named: `undefined`.
 */
function rebuild(
  match: RegExpExecArray,
  keys: ReadonlyArray<{ name: string | number }>,
  caseInsensitive: boolean,
): string | undefined {
  // A case-insensitive mount matched `/Users/1` as well as `/users/1`: one name for both.
  const whole = caseInsensitive ? match[0].toLowerCase() : match[0];
  const indices = match.indices;
  if (indices === undefined) return undefined;
  let out = '';
  let at = 0;
  for (let i = 1; i < match.length; i++) {
    const span = indices[i];
    if (span === undefined) continue;
    const key = keys[i - 1];
    if (key === undefined || typeof key.name !== 'string') return undefined;
    out += `${whole.slice(at, span[0])}:${key.name}`;
    at = span[1];
  }
  out += whole.slice(at);
  return out.length > 1 && out.endsWith('/') ? out.slice(0, -1) : out;
}

function join(prefix: string, rest: string): string {
  if (prefix === '' || prefix === '/') return rest === '' ? '/' : rest;
  const base = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (rest === '' || rest === '/') return base;
  return base + rest;
}

function pathname(url: string | undefined): string {
  if (url === undefined) return '/';
  let end = url.length;
  const q = url.indexOf('?');
  if (q !== -1) end = q;
  const h = url.indexOf('#');
  if (h !== -1 && h < end) end = h;
  return end === url.length ? url : url.slice(0, end);
}
