/**
 * The full stack on Fastify 5 as a Fastify plugin: `app.register(perfstack, options)` from
 * perfstack/fastify, every layer on (the same options as every full-stack scenario), GET
 * /api/cached cached through the route's `config.perfstack.cache`. Fastify's own logger is
 * off: the stack's access log is the one line per request. BENCH_REDIS=1: Redis.
 */
import Fastify from 'fastify';
import { CACHED_PATH, created, POST_PATH, PRODUCTS_PATH, products } from '../lib/fixture.js';
import { requireExports } from '../lib/perfstack.js';
import { buildStack } from '../lib/stack-options.js';

const { perfstack } = await requireExports('perfstack/fastify', ['perfstack']);
const options = await buildStack((stackOptions) => stackOptions);
const app = Fastify({ logger: false });
await app.register(perfstack, options);
app.get(PRODUCTS_PATH, async () => products);
app.get(CACHED_PATH, { config: { perfstack: { cache: { ttl: '5m' } } } }, async () => products);
app.post(POST_PATH, async (request, reply) => {
  reply.code(201);
  return created(request.body);
});
const port = Number(process.env.PORT ?? 0);
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write(`READY ${app.server.address().port}\n`);
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
