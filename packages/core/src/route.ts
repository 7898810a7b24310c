/**
 * The route pattern of a request (`/users/:id`), for metric labels, logs, breakers and
 * per-route cache stats. Never the raw URL: label values must stay bounded.
 *
 * Sources, first match wins:
 * 1. a pattern set explicitly with {@link setRoute} (plain `node:http` apps, custom routers);
 * 2. the pattern the framework *will* run, resolved before the router runs: Express 4/5 through
 *    the app's router stack (`adapters/express-routes.ts`, nested routers and parameterised
 *    mounts included), Koa through @koa/router's `match()` (`adapters/koa-routes.ts`);
 * 3. what the router left on the request once it ran: Express `req.baseUrl + req.route.path`
 *    (sub-apps the resolver cannot see into), Koa `ctx._matchedRoute`.
 *
 * Every layer reads the same answer (it is pinned on the request), so metric labels, breaker
 * keys, rate-limit route keys and the dashboard's route table agree.
 */
import type { IncomingMessage } from 'node:http';
import { resolveExpressRoute, resolveExpressSubAppRoute } from './adapters/express-routes.js';
import { resolveKoaRoute } from './adapters/koa-routes.js';
import { gateExpressErrorHandlers } from './errors.js';

/** The label every request without a known route pattern shares. */
export const UNMATCHED_ROUTE = 'unmatched';

const ROUTE = Symbol.for('perfstack.route');
const KOA_CONTEXT = Symbol.for('perfstack.koaContext');
/** The resolved pattern, or `null` when the framework will run no route for the request. */
const RESOLVED = Symbol.for('perfstack.resolvedRoute');

type RoutedRequest = IncomingMessage & {
  [ROUTE]?: string;
  [RESOLVED]?: string | null;
  app?: unknown;
  [KOA_CONTEXT]?: { _matchedRoute?: unknown };
  route?: { path?: unknown };
  baseUrl?: unknown;
};

/** Sets the route pattern of a request explicitly. */
export function setRoute(req: IncomingMessage, pattern: string): void {
  (req as RoutedRequest)[ROUTE] = pattern;
}

/** @internal Links a Koa context to its request, so the route can be read later. */
export function linkKoaContext(req: IncomingMessage, ctx: { _matchedRoute?: unknown }): void {
  (req as RoutedRequest)[KOA_CONTEXT] = ctx;
}

/**
 * Returns the route pattern known so far, or `undefined`. Express's pattern is only
 * complete while the route's handler runs (the router resets `baseUrl` on the way out),
 * so layers call {@link captureRoute} from `onBeforeHead` and read the result later.
 */
export function getRoute(req: IncomingMessage): string | undefined {
  const routed = req as RoutedRequest;
  const explicit = routed[ROUTE];
  if (explicit !== undefined) return explicit;
  const resolved = resolveRoute(req);
  if (resolved !== undefined) return resolved;
  const route = routed.route;
  if (route !== undefined && route !== null && route.path !== undefined) {
    // Inside an Express sub-app the resolver could not see into before: name it from the top.
    const inSubApp = resolveExpressSubAppRoute(req);
    if (inSubApp !== undefined) return inSubApp;
    const base = typeof routed.baseUrl === 'string' ? routed.baseUrl : '';
    const path = typeof route.path === 'string' ? route.path : String(route.path);
    return base + path;
  }
  const matched = routed[KOA_CONTEXT]?._matchedRoute;
  if (typeof matched === 'string') return matched;
  return undefined;
}

/**
 * The pattern the framework will run for this request, resolved before its router runs
 * (Express 4/5, @koa/router), or `undefined` when no route will answer it (a catch-all, a
 * proxy, a 404) or the framework is not one the resolver knows. Computed once per request.
 */
export function resolveRoute(req: IncomingMessage): string | undefined {
  const routed = req as RoutedRequest;
  const pinned = routed[RESOLVED];
  if (pinned !== undefined) return pinned ?? undefined;
  let resolved: string | undefined;
  if (typeof routed.app === 'function') {
    gateExpressErrorHandlers(req);
    resolved = resolveExpressRoute(req);
  } else {
    const ctx = routed[KOA_CONTEXT];
    if (ctx !== undefined) resolved = resolveKoaRoute(ctx as Parameters<typeof resolveKoaRoute>[0]);
  }
  routed[RESOLVED] = resolved ?? null;
  return resolved;
}

/** Reads the route now and pins it on the request, so later reads agree. */
export function captureRoute(req: IncomingMessage): string | undefined {
  const routed = req as RoutedRequest;
  if (routed[ROUTE] !== undefined) return routed[ROUTE];
  const route = getRoute(req);
  if (route !== undefined) routed[ROUTE] = route;
  return route;
}

/** The route pattern or {@link UNMATCHED_ROUTE}. */
export function routeLabel(req: IncomingMessage): string {
  return captureRoute(req) ?? UNMATCHED_ROUTE;
}

/** Most distinct {@link pathPrefixRoute} labels per process; past it, {@link UNMATCHED_ROUTE}. */
export const MAX_PREFIX_ROUTES = 64;
const prefixRoutes = new Set<string>();
const SEGMENT = /^[A-Za-z0-9._~-]{1,64}$/;

/**
 * The label of a request no router named — a refusal answered before any router ran, on
 * plain `node:http` without a `route` option, or for a path no route matches: its path's first
 * segment, `/api/*` for `/api/x/1`, `/health` for `/health`, `/` for `/`. Bounded: a segment
 * that is not a plain token (percent-encoding, over 64 characters) and every prefix past the
 * first {@link MAX_PREFIX_ROUTES} of the process are {@link UNMATCHED_ROUTE}, so a flood of
 * random paths cannot crowd the real routes out of the tables.
 *
 * @param url the request URL (path and query)
 * @returns a bounded label
 */
export function pathPrefixRoute(url: string | undefined): string {
  const path = pathOf(url);
  if (path === '/' || path === '') return '/';
  const slash = path.indexOf('/', 1);
  const segment = slash === -1 ? path.slice(1) : path.slice(1, slash);
  if (!SEGMENT.test(segment) || segment === '.' || segment === '..') return UNMATCHED_ROUTE;
  const label = slash === -1 || slash === path.length - 1 ? `/${segment}` : `/${segment}/*`;
  if (!prefixRoutes.has(label)) {
    if (prefixRoutes.size >= MAX_PREFIX_ROUTES) return UNMATCHED_ROUTE;
    prefixRoutes.add(label);
  }
  return label;
}

/** The path of a request URL without its query string (no allocation when there is no query). */
export function pathOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/**
 * Compiles path prefixes (`['/health', '/dashboard']`) into one matcher: a path matches a
 * prefix when it equals it or continues with `/` after it (`/dashboard/api` yes,
 * `/dashboards` no); a trailing slash on a prefix is ignored and `'/'` matches every path.
 * Built once at construction; the layers use it for their exempt/excluded paths.
 *
 * @param prefixes paths starting with `/`
 * @returns a function of a path (no query string)
 */
export function pathPrefixMatcher(prefixes: readonly string[]): (path: string) => boolean {
  const list = prefixes.map((p) => (p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p));
  if (list.length === 0) return () => false;
  if (list.includes('/')) return () => true;
  return function matchesPathPrefix(path: string): boolean {
    for (const prefix of list) {
      if (path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47)) {
        return true;
      }
    }
    return false;
  };
}
