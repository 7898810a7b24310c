/**
 * The full stack on Express 5: `app.use(performanceStack(options))`, every layer on, and
 * `cache({ ttl: '5m' })` on GET /api/cached (the cache-hit route). BENCH_REDIS=1: Redis.
 */
import http from 'node:http';
import { expressApp } from '../lib/apps.js';
import { listen } from '../lib/fixture.js';
import { requireExports } from '../lib/perfstack.js';
import { buildStack } from '../lib/stack-options.js';

const { performanceStack, cache } = await requireExports('perfstack', ['performanceStack', 'cache']);
const stack = await buildStack(performanceStack);
const server = http.createServer(await expressApp({ use: [stack], cacheRoute: [cache({ ttl: '5m' })] }));
listen(server);
process.on('SIGTERM', () => stack.close?.());
