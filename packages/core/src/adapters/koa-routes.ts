/**
 * Resolves the route pattern of a Koa request before @koa/router runs it: the app's
 * middleware list is searched for router dispatchers (`router.routes()` carries its router
 * as `.router`), and the first router whose `match(path, method)` finds a route names it —
 * the last matching route layer, exactly the one @koa/router writes to `ctx._matchedRoute`.
 * Nested routers (`router.use('/users/:uid', nested.routes())`) are copied into their
 * parent with the mount's prefix, so the pattern is the full one (`/users/:uid/posts/:pid`).
 */

/** The parts of a Koa context this module reads. */
interface KoaContextLike {
  readonly app?: { readonly middleware?: unknown };
  readonly path?: unknown;
  readonly method?: unknown;
}

interface RouterLayer {
  readonly path?: unknown;
  readonly methods?: readonly string[];
}

interface KoaRouterLike {
  readonly stack?: readonly unknown[];
  match(path: string, method: string): { pathAndMethod?: readonly RouterLayer[]; route?: boolean };
  readonly opts?: { readonly routerPath?: unknown };
}

/** The @koa/router instances mounted on a Koa app, in order. */
function routersOf(app: { readonly middleware?: unknown }): KoaRouterLike[] {
  const middleware = app.middleware;
  if (!Array.isArray(middleware)) return [];
  const routers: KoaRouterLike[] = [];
  for (const fn of middleware) {
    const router = (fn as { router?: unknown } | null)?.router;
    if (router !== null && typeof router === 'object' && typeof (router as KoaRouterLike).match === 'function') {
      routers.push(router as KoaRouterLike);
    }
  }
  return routers;
}

/**
 * The pattern @koa/router will match for this context, or `undefined` (no router, or no
 * route matches: 404s and plain middleware).
 */
export function resolveKoaRoute(ctx: KoaContextLike): string | undefined {
  const app = ctx.app;
  if (app === undefined || app === null) return undefined;
  const path = typeof ctx.path === 'string' ? ctx.path : undefined;
  const method = typeof ctx.method === 'string' ? ctx.method : 'GET';
  if (path === undefined) return undefined;
  for (const router of routersOf(app)) {
    const routerPath = router.opts?.routerPath;
    const found = matchRouter(router, typeof routerPath === 'string' ? routerPath : path, method);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Answers cached per router before the cache starts over. */
const CACHE_SIZE = 2048;

interface RouterCache {
  length: number;
  readonly answers: Map<string, string | null>;
}

const caches = new WeakMap<object, RouterCache>();

/** One router's answer, cached by method and path (cleared when the router's stack changes). */
function matchRouter(router: KoaRouterLike, path: string, method: string): string | undefined {
  const length = Array.isArray(router.stack) ? router.stack.length : -1;
  let cache = caches.get(router);
  if (cache === undefined) {
    cache = { length, answers: new Map() };
    caches.set(router, cache);
  } else if (cache.length !== length) {
    cache.length = length;
    cache.answers.clear();
  }
  const key = `${method} ${path}`;
  const cached = cache.answers.get(key);
  if (cached !== undefined) return cached ?? undefined;
  let answer: string | null = null;
  try {
    const result = router.match(path, method);
    const layers = result.route === true ? (result.pathAndMethod ?? []) : [];
    for (let i = layers.length - 1; i >= 0; i--) {
      const layer = layers[i] as RouterLayer;
      if (layer.methods !== undefined && layer.methods.length > 0 && typeof layer.path === 'string') {
        answer = layer.path;
        break;
      }
    }
  } catch {
    answer = null;
  }
  // Full (high-cardinality paths: `/users/1`, `/users/2`, ...): start over. Cheaper than any
  // eviction, and the paths that matter come back at once.
  if (cache.answers.size >= CACHE_SIZE) cache.answers.clear();
  cache.answers.set(key, answer);
  return answer ?? undefined;
}
