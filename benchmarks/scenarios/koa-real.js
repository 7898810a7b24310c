/**
 * Koa 3 with the middleware most Koa APIs run (lib/real-app.js: @koa/bodyparser, a
 * session, an authenticated user) — bare, or with `performanceStack()` from perfstack/koa
 * in front of them (BENCH_STACK=1, every layer on, GET /api/cached behind the route cache).
 */
import http from 'node:http';
import { koaApp } from '../lib/apps.js';
import { listen } from '../lib/fixture.js';
import { koaRealMiddleware } from '../lib/real-app.js';

const use = await koaRealMiddleware();
const cacheRoute = [];
let stack;
if (process.env.BENCH_STACK === '1') {
  const { requireExports } = await import('../lib/perfstack.js');
  const { buildStack } = await import('../lib/stack-options.js');
  const koa = await requireExports('perfstack/koa', ['performanceStack', 'cache', 'toKoa']);
  stack = await buildStack(koa.performanceStack);
  use.unshift(stack);
  cacheRoute.push(koa.toKoa(koa.cache({ ttl: '5m' })));
}
const app = await koaApp({ use, cacheRoute, parsedBody: true });
listen(http.createServer(app.callback()));
process.on('SIGTERM', () => stack?.close?.());
