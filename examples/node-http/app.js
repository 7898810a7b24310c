/** The plain node:http example: the same catalog and stack, with a tiny hand-written router. */
import { createCatalog, exampleStackOptions, invalidProduct, readJson } from '@perfstack/example-catalog';
import { cache, createListener, performanceStack } from 'perfstack/node';

function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}

/**
 * The route pattern of a request, named before the stack runs (the `route` option), so the
 * breaker guards `/products/:id` from its first request and the metrics never see raw ids.
 */
function routeOf(req) {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/' || path === '/products' || path === '/quote') return path;
  if (/^\/products\/[^/]+$/.test(path)) return '/products/:id';
  return undefined;
}

/** Runs a Connect-style route middleware, then the handler. */
function withRouteMiddleware(middleware, handler) {
  return (req, res) =>
    middleware(req, res, (error) => (error ? json(res, 500, { error: 'failed' }) : handler(req, res)));
}

export function createApp({ redis = process.env.REDIS_URL, stackOptions = {}, catalogOptions = {} } = {}) {
  const catalog = createCatalog(catalogOptions);
  const stack = performanceStack(exampleStackOptions(redis, stackOptions));
  const productsCache = cache({ ttl: '30s', tags: ['products'] });
  const listProducts = withRouteMiddleware(productsCache, async (_req, res) => json(res, 200, await catalog.list()));
  const getProduct = (id) =>
    withRouteMiddleware(productsCache, async (_req, res) => {
      const product = await catalog.get(id);
      json(res, product ? 200 : 404, product ?? { error: 'not found' });
    });
  const quote = withRouteMiddleware(cache({ ttl: '5s', staleIfError: '5m' }), async (_req, res) => {
    try {
      json(res, 200, await catalog.flakyQuote());
    } catch {
      json(res, 502, { error: 'upstream failed' });
    }
  });

  const listener = createListener(
    stack,
    async (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      const product = /^\/products\/([^/]+)$/.exec(path);
      if (path === '/' && req.method === 'GET') {
        return json(res, 200, {
          name: 'perfstack example catalog (node:http)',
          try: ['/products', '/products/1', '/quote', '/dashboard'],
        });
      }
      if (path === '/products' && (req.method === 'GET' || req.method === 'HEAD')) {
        return listProducts(req, res);
      }
      if (path === '/products' && req.method === 'POST') {
        const body = await readJson(req);
        const problem = invalidProduct(body);
        if (problem) return json(res, 400, { error: problem });
        const created = await catalog.create(body);
        await stack.cache.invalidate({ tags: ['products'] });
        return json(res, 201, created);
      }
      if (product && (req.method === 'GET' || req.method === 'HEAD')) {
        return getProduct(product[1])(req, res);
      }
      if (path === '/quote' && req.method === 'GET') {
        return quote(req, res);
      }
      return json(res, 404, { error: 'not found' });
    },
    { route: routeOf },
  );
  return { listener, stack, catalog };
}
