/** The Koa example: the same catalog and stack as the Express one. */
import Router from '@koa/router';
import { createCatalog, exampleStackOptions, invalidProduct, readJson } from '@perfstack/example-catalog';
import Koa from 'koa';
import { cache, performanceStack } from 'perfstack/koa';

const CLIENT_ERROR_TITLES = {
  400: 'Bad Request',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
};

export function createApp({ redis = process.env.REDIS_URL, stackOptions = {}, catalogOptions = {} } = {}) {
  const catalog = createCatalog(catalogOptions);
  const stack = performanceStack(exampleStackOptions(redis, stackOptions));
  const app = new Koa();
  app.use(stack);
  app.use(stack.endpoints());
  // A client's error (malformed JSON 400, over-limit 413: `err.status`) is answered with its
  // own status as problem+json, so it never counts against the route's breaker; anything else
  // goes on to Koa's default handler (500).
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const status = error.status ?? error.statusCode;
      if (!(Number.isInteger(status) && status >= 400 && status < 500)) throw error;
      ctx.status = status;
      ctx.body = {
        type: 'about:blank',
        title: CLIENT_ERROR_TITLES[status] ?? 'Bad Request',
        status,
        detail: error.expose ? error.message : 'The request could not be processed.',
      };
      ctx.type = 'application/problem+json';
    }
  });
  const router = new Router();
  const productsCache = cache({ ttl: '30s', tags: ['products'] });
  router.get('/', (ctx) => {
    ctx.body = { name: 'perfstack example catalog (Koa)', try: ['/products', '/products/1', '/quote', '/dashboard'] };
  });
  router.get('/products', productsCache, async (ctx) => {
    ctx.body = await catalog.list();
  });
  router.get('/products/:id', productsCache, async (ctx) => {
    const product = await catalog.get(ctx.params.id);
    ctx.status = product ? 200 : 404;
    ctx.body = product ?? { error: 'not found' };
  });
  router.post('/products', async (ctx) => {
    const body = await readJson(ctx.req);
    const problem = invalidProduct(body);
    if (problem) {
      ctx.status = 400;
      ctx.body = { error: problem };
      return;
    }
    ctx.status = 201;
    ctx.body = await catalog.create(body);
    await stack.cache.invalidate({ tags: ['products'] });
  });
  router.get('/quote', cache({ ttl: '5s', staleIfError: '5m' }), async (ctx) => {
    try {
      ctx.body = await catalog.flakyQuote();
    } catch {
      ctx.status = 502;
      ctx.body = { error: 'upstream failed' };
    }
  });
  app.use(router.routes());
  app.use(router.allowedMethods());
  return { app, stack, catalog };
}
