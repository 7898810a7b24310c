/**
 * The one app every scenario serves, built for each framework: GET /api/products,
 * GET /api/cached (the caching scenarios put their cache middleware on it) and
 * POST /api/products. Scenario files add only their middleware around it.
 */
import {
  BODY_LIMIT,
  CACHED_PATH,
  created,
  POST_PATH,
  PRODUCTS_JSON,
  PRODUCTS_PATH,
  products,
  readJsonBody,
} from './fixture.js';

function sendProducts(_req, res) {
  res.json(products);
}

/**
 * The cached route's origin counts its calls in `X-Origin-Count`: a cache that replays a
 * stored response replays the old count, which is how the checks tell a hit from a miss
 * for any cache, whatever headers it adds.
 */
let originCalls = 0;
export function nextOriginCount() {
  originCalls += 1;
  return String(originCalls);
}

/** How many times the cached route's origin ran (for caches that replay the body only). */
export function originCount() {
  return originCalls;
}

function sendCachedProducts(_req, res) {
  res.setHeader('X-Origin-Count', nextOriginCount());
  res.json(products);
}

/** The route that always fails (500): the open-breaker scenario opens its breaker with it. */
export const FAIL_PATH = '/api/fail';
const FAIL_JSON = '{"error":"origin failed"}';

/**
 * An Express 5 app.
 * @param {{ use?: Function[], cacheRoute?: Function[], jsonParser?: boolean, express?: any }} [options]
 *   `use`: global middleware in order; `cacheRoute`: middleware for GET /api/cached only;
 *   `jsonParser`: put express.json() on the POST route (off when a global one runs already).
 */
export async function expressApp({ use = [], cacheRoute = [], jsonParser = true } = {}) {
  const { default: express } = await import('express');
  const app = express();
  for (const mw of use) app.use(mw);
  app.get(PRODUCTS_PATH, sendProducts);
  app.get(CACHED_PATH, ...cacheRoute, sendCachedProducts);
  app.get(FAIL_PATH, (_req, res) => {
    res.status(500).type('json').send(FAIL_JSON);
  });
  const postChain = jsonParser ? [express.json({ limit: BODY_LIMIT })] : [];
  app.post(POST_PATH, ...postChain, (req, res) => {
    res.status(201).json(created(req.body));
  });
  // The error handler every real app has (instead of Express's default, which prints each
  // error to stderr): the error's status as JSON, unless an answer already went out.
  app.use(function benchErrorHandler(error, _req, res, next) {
    if (res.headersSent) {
      next(error);
      return;
    }
    const status = Number.isInteger(error?.status) ? error.status : 500;
    res.status(status).json({ error: status < 500 ? String(error.message) : 'internal error' });
  });
  return app;
}

/**
 * A Koa 3 app with @koa/router.
 * @param {{ use?: Function[], cacheRoute?: Function[], parsedBody?: boolean }} [options]
 *   `parsedBody`: a body parser in `use` has read the body already (`ctx.request.body`).
 */
export async function koaApp({ use = [], cacheRoute = [], parsedBody = false } = {}) {
  const [{ default: Koa }, routerModule] = await Promise.all([import('koa'), import('@koa/router')]);
  const Router = routerModule.Router ?? routerModule.default;
  const app = new Koa();
  const router = new Router();
  const sendKoaProducts = (ctx) => {
    ctx.body = products;
  };
  router.get(PRODUCTS_PATH, sendKoaProducts);
  router.get(CACHED_PATH, ...cacheRoute, (ctx) => {
    ctx.set('X-Origin-Count', nextOriginCount());
    ctx.body = products;
  });
  router.post(POST_PATH, async (ctx) => {
    let body;
    if (parsedBody) {
      ctx.status = 201;
      ctx.body = created(ctx.request.body);
      return;
    }
    try {
      body = await readJsonBody(ctx.req);
    } catch (error) {
      ctx.throw(error.status ?? 400);
    }
    ctx.status = 201;
    ctx.body = created(body);
  });
  for (const mw of use) app.use(mw);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

/**
 * A plain node:http listener for the same routes.
 * @param {{ onRoute?: (req: any, pattern: string) => void, cached?: (req: any, res: any, send: () => void) => void }} [options]
 *   `onRoute` labels the request with its route pattern (perfstack's setRoute);
 *   `cached` wraps the GET /api/cached answer (the per-route cache of perfstack/node).
 */
export function nodeHandler({ onRoute, cached } = {}) {
  const sendJson = (res, status, json) => {
    // A layer in front (a size limit) may have answered already while the body was read.
    if (res.headersSent || res.writableEnded) return;
    res.statusCode = status;
    res.setHeader('Content-Type', 'application/json; charset=utf-8');
    res.setHeader('Content-Length', Buffer.byteLength(json));
    res.end(json);
  };
  const sendProductsNode = (res) => sendJson(res, 200, JSON.stringify(products));
  return function benchListener(req, res) {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path === PRODUCTS_PATH && req.method === 'GET') {
      onRoute?.(req, PRODUCTS_PATH);
      sendProductsNode(res);
      return;
    }
    if (path === CACHED_PATH && req.method === 'GET') {
      onRoute?.(req, CACHED_PATH);
      const send = () => {
        res.setHeader('X-Origin-Count', nextOriginCount());
        sendProductsNode(res);
      };
      if (cached) cached(req, res, send);
      else send();
      return;
    }
    if (path === POST_PATH && req.method === 'POST') {
      onRoute?.(req, POST_PATH);
      readJsonBody(req).then(
        (body) => sendJson(res, 201, JSON.stringify(created(body))),
        (error) => sendJson(res, error.status ?? 400, JSON.stringify({ error: error.message })),
      );
      return;
    }
    sendJson(res, 404, '{"error":"not found"}');
  };
}

export { PRODUCTS_JSON };
