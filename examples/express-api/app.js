/**
 * The Express example app: a catalog API behind `performanceStack()`.
 * `server.js` starts it; the tests import `createApp()` directly.
 */
import { createCatalog, exampleStackOptions, invalidProduct } from '@perfstack/example-catalog';
import express from 'express';
import { cache, performanceStack } from 'perfstack';

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
  app.use((error, _req, res, _next) => {
    res.status(502).json({ error: 'upstream failed' });
    void error;
  });
  return { app, stack, catalog };
}
