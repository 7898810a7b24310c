/**
 * Which requests go to the stack's own endpoints (the dashboard, `/metrics`, `/health`).
 *
 * Such a request is exempt from the cache, the rate limits, the breakers, the timing
 * windows and (unless `logEndpoints`) the access log — exactly when the framework would
 * route it to the endpoint, no more, no less. A case change (`/Metrics`) or a trailing slash
 * (`/health/`) reaches the endpoint in a default Express app, so it is exempt there; with
 * `case sensitive routing` or `strict routing` on, the app's router does not route it to the
 * endpoint, so it is an ordinary request (limited, counted, logged).
 *
 * The rules mirror how the documented mounts are routed:
 * - `app.get('/metrics', stack.metrics())`, `app.get('/health', stack.health())`: a route
 *   (`GET` and `HEAD`), the whole path, case per the router's `caseSensitive`, one trailing
 *   slash allowed unless the router is `strict`;
 * - `app.use('/dashboard', stack.dashboard())`: a prefix (any method), `/dashboard`,
 *   `/dashboard/` and below, case per `caseSensitive`; `strict` does not apply to `use`.
 *
 * Paths are compared with `req.url`, the path as the router that runs the stack sees it:
 * when the stack and its endpoints are mounted in a sub-app (`app.use('/api', api)`), the
 * prefix is already stripped. Express's settings are read from the router that is routing
 * the request (`req.app`'s router: Express 4 `app._router`, Express 5 `app.router`), so they
 * are the ones in force, whenever they were set. Koa (`stack.endpoints()`) and `node:http`
 * (`createListener`) route the endpoints with this same matcher at its defaults (any case,
 * one trailing slash), so they agree by construction.
 */
import type { IncomingMessage } from 'node:http';
import { pathOf } from '@perfstack/core';

/** One of the stack's endpoints. */
export type EndpointName = 'dashboard' | 'metrics' | 'health';

/** How a router matches paths. */
export interface RoutingSettings {
  /** `case sensitive routing` (Express), `sensitive` (@koa/router). @default false */
  readonly caseSensitive: boolean;
  /** `strict routing` (Express), `strict` (@koa/router). @default false */
  readonly strict: boolean;
}

/** Express's defaults, which Koa's and node's endpoint routing follow too. */
export const DEFAULT_ROUTING: RoutingSettings = Object.freeze({ caseSensitive: false, strict: false });

type ExpressRouterLike = { caseSensitive?: unknown; strict?: unknown };
type ExpressAppLike = { _router?: ExpressRouterLike; router?: ExpressRouterLike; handle?: unknown; set?: unknown };

const settingsByApp = new WeakMap<object, RoutingSettings>();

/**
 * The routing settings of the Express (sub)app handling `req`, or the defaults. Read from
 * the app's router once per app (the router's settings are fixed when it is made).
 */
export function routingOf(req: IncomingMessage): RoutingSettings {
  const app = (req as IncomingMessage & { app?: ExpressAppLike }).app;
  if (typeof app !== 'function' && (typeof app !== 'object' || app === null)) return DEFAULT_ROUTING;
  let settings = settingsByApp.get(app);
  if (settings !== undefined) return settings;
  if (typeof app.handle !== 'function' || typeof app.set !== 'function') return DEFAULT_ROUTING;
  // Express 4 keeps its router in `_router` (reading `app.router` there throws); Express 5
  // makes `app.router` lazily, and it exists by the time the app handles a request.
  const router = app._router ?? app.router;
  if (router === undefined) return DEFAULT_ROUTING;
  settings = { caseSensitive: router.caseSensitive === true, strict: router.strict === true };
  settingsByApp.set(app, settings);
  return settings;
}

/** True when `path` starts with `prefix`, in any case when `caseSensitive` is false. */
function startsWith(path: string, prefix: string, caseSensitive: boolean): boolean {
  if (path.length < prefix.length) return false;
  if (caseSensitive) return path.startsWith(prefix);
  return path.startsWith(prefix) || path.slice(0, prefix.length).toLowerCase() === prefix.toLowerCase();
}

/** Classifies requests by the endpoint the framework routes them to. Built once per stack. */
export class EndpointMatcher {
  /** `undefined` when the dashboard is off (`DASHBOARD_ENABLED=false`): never an endpoint. */
  readonly #dashboard: string | undefined;
  readonly #metrics: string;
  readonly #health: string;
  /** The shortest endpoint path: anything shorter is no endpoint (the common case, decided at once). */
  readonly #shortest: number;

  constructor(paths: { readonly dashboard: string | undefined; readonly metrics: string; readonly health: string }) {
    this.#dashboard = paths.dashboard;
    this.#metrics = paths.metrics;
    this.#health = paths.health;
    this.#shortest = Math.min(
      paths.dashboard?.length ?? Number.POSITIVE_INFINITY,
      paths.metrics.length,
      paths.health.length,
    );
  }

  /** The endpoint `req` is routed to, by the settings of the app handling it. */
  match(req: IncomingMessage): EndpointName | undefined {
    const path = pathOf(req.url);
    if (path.length < this.#shortest) return undefined;
    // The most permissive settings first: most requests are no endpoint under any settings,
    // and they are decided without looking the app's settings up.
    const loose = this.matchPath(path, req.method, DEFAULT_ROUTING);
    if (loose === undefined) return undefined;
    const settings = routingOf(req);
    return settings === DEFAULT_ROUTING ? loose : this.matchPath(path, req.method, settings);
  }

  /** The endpoint a request for `path` with `method` is routed to under `settings`. */
  matchPath(
    path: string,
    method: string | undefined,
    settings: RoutingSettings = DEFAULT_ROUTING,
  ): EndpointName | undefined {
    const { caseSensitive, strict } = settings;
    const dashboard = this.#dashboard;
    if (
      dashboard !== undefined &&
      startsWith(path, dashboard, caseSensitive) &&
      (path.length === dashboard.length || path.charCodeAt(dashboard.length) === 47)
    ) {
      return 'dashboard';
    }
    if (method !== 'GET' && method !== 'HEAD') return undefined;
    if (this.#isRoute(path, this.#metrics, caseSensitive, strict)) return 'metrics';
    if (this.#isRoute(path, this.#health, caseSensitive, strict)) return 'health';
    return undefined;
  }

  #isRoute(path: string, route: string, caseSensitive: boolean, strict: boolean): boolean {
    if (path.length === route.length) return startsWith(path, route, caseSensitive);
    return (
      !strict &&
      path.length === route.length + 1 &&
      path.charCodeAt(route.length) === 47 &&
      startsWith(path, route, caseSensitive)
    );
  }
}
