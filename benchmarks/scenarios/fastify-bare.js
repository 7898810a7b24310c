// Baseline: bare Fastify 5 (logger off, default bodyLimit, no schema: JSON.stringify like the others).
import Fastify from 'fastify';
import { CACHED_PATH, created, POST_PATH, PRODUCTS_PATH, products } from '../lib/fixture.js';

const app = Fastify({ logger: false });
app.get(PRODUCTS_PATH, async () => products);
app.get(CACHED_PATH, async () => products);
app.post(POST_PATH, async (request, reply) => {
  reply.code(201);
  return created(request.body);
});
const port = Number(process.env.PORT ?? 0);
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write(`READY ${app.server.address().port}\n`);
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
