/**
 * The Fastify example: the same catalog and stack as the Express one, with perfstack as a
 * Fastify plugin (`perfstack/fastify`) and each route's cache in its `config.perfstack`.
 */
import { createCatalog, exampleStackOptions, invalidProduct } from '@perfstack/example-catalog';
import Fastify from 'fastify';
import perfstack from 'perfstack/fastify';

const productsRoute = { config: { perfstack: { cache: { ttl: '30s', tags: ['products'] } } } };
const quoteRoute = { config: { perfstack: { cache: { ttl: '5s', staleIfError: '5m' } } } };

export async function createApp({
  redis = process.env.REDIS_URL,
  stackOptions = {},
  catalogOptions = {},
  fastifyOptions = {},
} = {}) {
  const catalog = createCatalog(catalogOptions);
  // Fastify's own request logging stays off: the stack's access log is the one line per
  // request, and `request.log` in a handler is that logger (redacted, with the request id).
  const app = Fastify({ logger: false, ...fastifyOptions });
  await app.register(perfstack, exampleStackOptions(redis, stackOptions));
  const stack = app.perfstack;

  app.get('/', async () => ({
    name: 'perfstack example catalog (Fastify)',
    try: ['/products', '/products/1', '/quote', '/dashboard'],
  }));
  app.get('/products', productsRoute, async () => catalog.list());
  app.get('/products/:id', productsRoute, async (request, reply) => {
    const product = await catalog.get(request.params.id);
    if (!product) {
      reply.code(404);
      return { error: 'not found' };
    }
    return product;
  });
  // Fastify parses the JSON body (its own 10 kB bodyLimit); malformed JSON, a wrong media type
  // and an over-limit body become problem+json through the plugin's error handler.
  app.post('/products', { bodyLimit: 10 * 1024 }, async (request, reply) => {
    const problem = invalidProduct(request.body);
    if (problem) {
      reply.code(400);
      return { error: problem };
    }
    const product = await catalog.create(request.body);
    await stack.cache.invalidate({ tags: ['products'] });
    reply.code(201);
    return product;
  });
  // A flaky upstream: fails about a third of the time. Cached with stale-if-error, so once a
  // good answer was stored, failures and an open breaker are answered from the stale copy.
  app.get('/quote', quoteRoute, async (_request, reply) => {
    try {
      return await catalog.flakyQuote();
    } catch {
      reply.code(502);
      return { error: 'upstream failed' };
    }
  });
  return { app, stack, catalog };
}
