/**
 * The full stack on NestJS 11 (Express adapter): `PerfstackModule.forRoot(options)` of
 * @perfstack/nestjs with every layer on (lib/stack-options.js, the same options as the
 * Express, Koa and node scenarios) and `@CacheResponse({ ttl: '5m' })` on GET /api/cached.
 */
import { listen } from '../lib/fixture.js';
import { nestApp } from '../lib/nest-app.js';
import { requireExports } from '../lib/perfstack.js';
import { buildStack } from '../lib/stack-options.js';

const { PerfstackModule, CacheResponse } = await requireExports('@perfstack/nestjs', [
  'PerfstackModule',
  'CacheResponse',
]);
// buildStack() makes the options the other full-stack scenarios pass to performanceStack().
const options = await buildStack((o) => o);
const server = await nestApp({
  imports: [PerfstackModule.forRoot(options)],
  cachedRoute: [CacheResponse({ ttl: '5m' })],
});
listen(server);
