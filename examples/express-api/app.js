/**
 * The Express example app: a catalog API behind `performanceStack()`.
 * `server.js` starts it; the tests import `createApp()` directly.
 */
import { createCatalog, exampleStackOptions, invalidProduct } from '@perfstack/example-catalog';
import express from 'express';
import { cache, performanceStack } from 'perfstack';

const CLIENT_ERROR_TITLES = {
  400: 'Bad Request',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
};

export function createApp({ redis = process.env.REDIS_URL, stackOptions = {}, catalogOptions = {} } = {}) {
  const catalog = createCatalog(catalogOptions);
  const stack = performanceStack(exampleStackOptions(redis, stackOptions));

  const app = express();
  app.disable('x-powered-by');
  app.use(stack);
  app.use('/dashboard', stack.dashboard());
  app.get('/metrics', stack.metrics());
  app.get('/health', stack.health());

  app.get('/', (_req, res) => {
    res.json({ name: 'perfstack example catalog', try: ['/products', '/products/1', '/quote', '/dashboard'] });
  });
  app.get('/products', cache({ ttl: '30s', tags: ['products'] }), async (_req, res) => {
    res.json(await catalog.list());
  });
  app.get('/products/:id', cache({ ttl: '30s', tags: ['products'] }), async (req, res) => {
    const product = await catalog.get(req.params.id);
    if (!product) {
      res.status(404).json({ error: 'not found' });
      return;
    }
    res.json(product);
  });
  app.post('/products', express.json({ limit: '10kb' }), async (req, res) => {
    const problem = invalidProduct(req.body);
    if (problem) {
      res.status(400).json({ error: problem });
      return;
    }
    const product = await catalog.create(req.body);
    await stack.cache.invalidate({ tags: ['products'] });
    res.status(201).json(product);
  });
  // A flaky upstream: fails about a third of the time. Cached with stale-if-error, so once a
  // good answer was stored, failures and an open breaker are answered from the stale copy.
  app.get('/quote', cache({ ttl: '5s', staleIfError: '5m' }), async (_req, res, next) => {
    try {
      res.json(await catalog.flakyQuote());
    } catch (error) {
      next(error);
    }
  });
  // The error handler a real app needs: a client's error (a body parser's malformed JSON 400,
  // over-limit 413, bad charset 415: `err.status`) is answered with its own status as
  // problem+json, so it never counts against the route's breaker; only the upstream's failure
  // is a 502. A response already under way cannot be answered again: Express closes it.
  app.use((error, _req, res, next) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const status = error.status ?? error.statusCode;
    if (Number.isInteger(status) && status >= 400 && status < 500) {
      res
        .status(status)
        .type('application/problem+json')
        .json({
          type: 'about:blank',
          title: CLIENT_ERROR_TITLES[status] ?? 'Bad Request',
          status,
          detail: error.expose ? error.message : 'The request could not be processed.',
        });
      return;
    }
    res.status(502).json({ error: 'upstream failed' });
  });
  return { app, stack, catalog };
}
