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
  parent?: unknown;
}

/** Answers cached per router before the cache starts over. */
const CACHE_SIZE = 2048;
/** How deep mounted routers are followed (a cycle guard). */
const MAX_DEPTH = 16;

interface RouterCache {
  /** The top-level stack length the answers were computed for. */
  length: number;
  /** The sub-app generation the answers were computed for. */
  generation: number;
  readonly answers: Map<string, string | null>;
}

/**
 * Sub-apps seen so far, by parent app. Express keeps no link from a parent's `mounted_app`
 * layer to the sub-app it runs, only `subApp.parent` and `subApp.mountpath`; so a sub-app is
 * known from the first request that reached it ({@link resolveExpressSubAppRoute}), and the
 * walk enters it from then on.
 */
const subApps = new WeakMap<object, Set<ExpressApp>>();
/** Bumped when a sub-app becomes known: cached "no route" answers may have changed. */
let generation = 0;

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
  if (expressRouterOf(app) === undefined) return undefined;
  const parent = (app as ExpressApp).parent;
  // The top-level app routes `originalUrl` (inside a mounted router `req.url` is cut short);
  // a sub-app routes what is left after its mount, and its mount path is the prefix.
  const topLevel = parent === undefined || parent === null;
  const original = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl;
  const path = pathname(topLevel && typeof original === 'string' ? original : req.url);
  const mountpath = (app as ExpressApp).mountpath;
  const base = (req as IncomingMessage & { baseUrl?: unknown }).baseUrl;
  const prefix = topLevel ? '' : typeof mountpath === 'string' ? mountpath : typeof base === 'string' ? base : '';
  return resolveIn(app as ExpressApp, req.method ?? 'GET', path, prefix);
}

/**
 * The full route pattern the top-level Express `app` will run for a request it has not
 * dispatched yet (no `req.app`, no `originalUrl`): the stack's early refusals, which run
 * before Express, label and key them with it.
 *
 * @param app a top-level Express app (no `parent`)
 * @param method the request method
 * @param url the request target
 */
export function resolveExpressRouteIn(app: unknown, method: string, url: string | undefined): string | undefined {
  if (expressRouterOf(app) === undefined) return undefined;
  return resolveIn(app as ExpressApp, method, pathname(url), '');
}

/**
 * The full pattern of a request answered inside an Express sub-app (`app.use('/t/:tenant',
 * subApp)`), read while the sub-app runs: the sub-app and its ancestors become known to the
 * walk, and the pattern is resolved from the top-level app with `originalUrl`, so a mount's
 * parameters are named, never raw values. Later requests are resolved before the router runs.
 *
 * @returns the pattern, or `undefined` outside a sub-app or when no route matches
 */
export function resolveExpressSubAppRoute(req: IncomingMessage): string | undefined {
  let app = (req as IncomingMessage & { app?: unknown }).app as ExpressApp | undefined;
  if (typeof app !== 'function') return undefined;
  let depth = 0;
  while (typeof app.parent === 'function' && depth++ < MAX_DEPTH) {
    const parent = app.parent as ExpressApp;
    let known = subApps.get(parent);
    if (known === undefined) {
      known = new Set();
      subApps.set(parent, known);
    }
    if (!known.has(app)) {
      known.add(app);
      generation++;
    }
    app = parent;
  }
  if (depth === 0) return undefined;
  const original = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl;
  return resolveIn(app, req.method ?? 'GET', pathname(typeof original === 'string' ? original : req.url), '');
}

function resolveIn(app: ExpressApp, method: string, path: string, prefix: string): string | undefined {
  const router = expressRouterOf(app);
  if (router === undefined) return undefined;
  let cache = caches.get(router);
  if (cache === undefined) {
    cache = { length: router.stack.length, generation, answers: new Map() };
    caches.set(router, cache);
  } else if (cache.length !== router.stack.length || cache.generation !== generation) {
    cache.length = router.stack.length;
    cache.generation = generation;
    cache.answers.clear();
  }
  const key = `${method} ${path}`;
  const cached = cache.answers.get(key);
  if (cached !== undefined) return cached ?? undefined;
  const found = walk(router.stack, path, method, 0, app);
  const answer = found === undefined ? null : join(prefix, found);
  // Full (high-cardinality paths: `/users/1`, `/users/2`, ...): start over. Cheaper than any
  // eviction, and the paths that matter come back at once.
  if (cache.answers.size >= CACHE_SIZE) cache.answers.clear();
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

function walk(
  stack: readonly ExpressLayer[],
  path: string,
  method: string,
  depth: number,
  app: ExpressApp,
): string | undefined {
  if (depth > MAX_DEPTH) return undefined;
  const lower = path.toLowerCase();
  for (const layer of stack) {
    const route = layer.route;
    if (route !== undefined && !handlesMethod(route, method)) continue;
    // Most layers are ruled out by their literal start, without running their matcher.
    if (!lower.startsWith(literalPrefix(layer))) continue;
    let inner = layer.handle?.stack;
    let innerApp = app;
    if (route === undefined && !Array.isArray(inner)) {
      // A sub-app already seen at this mount: enter it. Other plain middleware (a catch-all,
      // a proxy) never names a route: pass over it.
      const sub = layer.handle?.name === 'mounted_app' ? subAppAt(app, layer, path) : undefined;
      if (sub === undefined) continue;
      inner = expressRouterOf(sub)?.stack;
      innerApp = sub;
      if (!Array.isArray(inner)) continue;
    }
    const match = matchLayer(layer, path);
    if (match === undefined) continue;
    if (route !== undefined) {
      const pattern = typeof route.path === 'string' ? route.path : match.pattern;
      if (pattern !== undefined) return pattern;
      continue;
    }
    let rest = path.slice(match.matched.length);
    if (rest === '' || rest[0] !== '/') rest = `/${rest}`;
    const found = walk(inner as ExpressLayer[], rest, method, depth + 1, innerApp);
    if (found !== undefined) return join(match.pattern ?? match.matched, found);
  }
  return undefined;
}

/** Literal starts of layer patterns, lower-cased (`''` when unknown: Express 4 mounts, RegExps, arrays). */
const literalPrefixes = new WeakMap<object, string>();

/**
 * The literal start of a layer's pattern, lower-cased (`/users/:id` → `/users/`): a path that
 * does not start with it (lower-cased too, since routing is case-insensitive by default)
 * cannot match, so the matcher need not run. A character made optional by `?`, `*` or `+`
 * (Express 4 strings) is left out, so is the `/` before a parameter (`/:id?` may be absent),
 * and so is the optional trailing slash of a literal pattern.
 */
function literalPrefix(layer: ExpressLayer): string {
  let prefix = literalPrefixes.get(layer);
  if (prefix !== undefined) return prefix;
  const raw = layer.route !== undefined ? layer.route.path : layer.rawPath;
  prefix = '';
  if (typeof raw === 'string') {
    const cut = raw.search(/[:*?+(){}[\]\\]/);
    if (cut === -1) prefix = raw.length > 1 && raw.endsWith('/') ? raw.slice(0, -1) : raw;
    // A char before `?`/`*`/`+` may be absent; so may the `/` before an optional `/:name?`.
    else prefix = raw.slice(0, '?*+:'.includes(raw[cut] as string) ? Math.max(0, cut - 1) : cut);
    prefix = prefix.toLowerCase();
  }
  literalPrefixes.set(layer, prefix);
  return prefix;
}

/** The known sub-app of `app` mounted by this `mounted_app` layer (its mount path is the layer's pattern). */
function subAppAt(app: ExpressApp, layer: ExpressLayer, path: string): ExpressApp | undefined {
  const known = subApps.get(app);
  if (known === undefined || known.size === 0) return undefined;
  const pattern = matchLayer(layer, path)?.pattern;
  if (pattern === undefined) return undefined;
  for (const sub of known) {
    const mountpath = sub.mountpath;
    if (mountpath === pattern || (Array.isArray(mountpath) && mountpath.includes(pattern))) return sub;
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
