/**
 * What a user would pick instead: Fastify 5 with its own plugins — the built-in pino
 * logger with redaction to a file, bodyLimit, @fastify/helmet, @fastify/cors,
 * @fastify/rate-limit, @fastify/under-pressure and fastify-metrics (12.x: 13+ wants
 * @platformatic/prom-client, 14 wants Node 22).
 */
import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import underPressure from '@fastify/under-pressure';
import Fastify from 'fastify';
import metrics from 'fastify-metrics';
import pino from 'pino';
import {
  BODY_LIMIT_BYTES,
  CACHED_PATH,
  created,
  logFile,
  POST_PATH,
  PRODUCTS_PATH,
  products,
  RATE_LIMIT,
  RATE_WINDOW_MS,
} from '../lib/fixture.js';

const logger = pino(
  { level: 'info', redact: ['req.headers.authorization', 'req.headers.cookie'] },
  pino.destination({ dest: logFile(), sync: false }),
);
const app = Fastify({ loggerInstance: logger, bodyLimit: BODY_LIMIT_BYTES });
await app.register(metrics.default ?? metrics, { endpoint: '/metrics' });
await app.register(helmet);
await app.register(cors);
await app.register(rateLimit, { max: RATE_LIMIT, timeWindow: RATE_WINDOW_MS });
// Under instructions.js (valgrind, BENCH_OVERLOAD_DELAY set) the loop-delay histogram can be
// empty, which under-pressure reads as an infinite delay: every request would be shed with
// nothing overloaded. There, its per-request check still runs and the answer lets it through
// (the perfstack scenarios move their threshold instead: lib/stack-options.js).
const valgrind = process.env.BENCH_OVERLOAD_DELAY !== undefined;
await app.register(underPressure, {
  maxEventLoopDelay: 1000,
  maxHeapUsedBytes: 0,
  maxRssBytes: 0,
  ...(valgrind ? { pressureHandler: () => undefined } : {}),
});
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
