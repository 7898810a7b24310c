/**
 * The full stack on Koa 3: `app.use(performanceStack(options))` from perfstack/koa, every
 * layer on; GET /api/cached behind the route cache (`toKoa(cache({ ttl: '5m' }))`, both
 * from perfstack/koa). BENCH_REDIS=1: Redis.
 */
import http from 'node:http';
import { koaApp } from '../lib/apps.js';
import { listen } from '../lib/fixture.js';
import { requireExports } from '../lib/perfstack.js';
import { buildStack } from '../lib/stack-options.js';

const koa = await requireExports('perfstack/koa', ['performanceStack', 'cache', 'toKoa']);
// perfstack/koa re-exports the Connect-style `cache()`; core's `toKoa` adapts it to a Koa route.
const routeCache = koa.toKoa(koa.cache({ ttl: '5m' }));
const stack = await buildStack(koa.performanceStack);
const app = await koaApp({ use: [stack], cacheRoute: [routeCache] });
listen(http.createServer(app.callback()));
process.on('SIGTERM', () => stack.close?.());
