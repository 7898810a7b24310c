/**
 * Express 5 with the middleware most APIs run (lib/real-app.js: express.json,
 * express.urlencoded, cookie-parser, a session, an authenticated user) — bare, or with
 * `performanceStack()` in front of them (BENCH_STACK=1, every layer on, GET /api/cached
 * behind `cache({ ttl: '5m' })`).
 */
import http from 'node:http';
import { expressApp } from '../lib/apps.js';
import { listen } from '../lib/fixture.js';
import { expressRealMiddleware } from '../lib/real-app.js';

const use = await expressRealMiddleware();
const cacheRoute = [];
let stack;
if (process.env.BENCH_STACK === '1') {
  const { requireExports } = await import('../lib/perfstack.js');
  const { buildStack } = await import('../lib/stack-options.js');
  const { performanceStack, cache } = await requireExports('perfstack', ['performanceStack', 'cache']);
  stack = await buildStack(performanceStack);
  use.unshift(stack);
  cacheRoute.push(cache({ ttl: '5m' }));
}
// The global express.json() parses the POST body: no second parser on the route.
listen(http.createServer(await expressApp({ use, cacheRoute, jsonParser: false })));
process.on('SIGTERM', () => stack?.close?.());
