/**
 * One perfstack layer alone on Express 5, chosen by BENCH_LAYER:
 * timing (`timing()`), cache (`responseCache()` + `cache({ ttl: '5m' })` on GET /api/cached;
 * with BENCH_REDIS=1 on Redis, `warmStart` from BENCH_WARM_START: read counts on or off),
 * size-limit (`sizeLimit({ limit })`), logger (`accessLog()` with its default redaction,
 * to a file), rate-limit (`rateLimit()`, memory or Redis with BENCH_REDIS=1),
 * circuit-breaker (`circuitBreaker()`).
 */
import http from 'node:http';
import { expressApp } from '../lib/apps.js';
import { BODY_LIMIT, listen, logFile, RATE_LIMIT, redisPrefix, redisUrl, wantsRedis } from '../lib/fixture.js';
import { requireExports } from '../lib/perfstack.js';

const layer = process.env.BENCH_LAYER;
const builders = {
  async timing() {
    const { timing } = await requireExports('@perfstack/timing', ['timing']);
    return { use: [timing()] };
  },
  async cache() {
    const { responseCache, cache } = await requireExports('@perfstack/cache', ['responseCache', 'cache']);
    const options = {};
    if (wantsRedis()) {
      const { createSharedRedis } = await requireExports('@perfstack/core', ['createSharedRedis']);
      options.redis = createSharedRedis({ url: redisUrl(), keyPrefix: redisPrefix() });
      options.warmStart = Number(process.env.BENCH_WARM_START ?? 100);
    }
    return { use: [responseCache(options)], cacheRoute: [cache({ ttl: '5m' })] };
  },
  async 'size-limit'() {
    const { sizeLimit } = await requireExports('@perfstack/size-limit', ['sizeLimit']);
    return { use: [sizeLimit({ limit: BODY_LIMIT })] };
  },
  async logger() {
    const { accessLog } = await requireExports('@perfstack/logger', ['accessLog']);
    return { use: [accessLog({ destination: logFile() })] };
  },
  async 'rate-limit'() {
    const { rateLimit } = await requireExports('@perfstack/rate-limit', ['rateLimit']);
    const options = { limit: RATE_LIMIT, window: '1m' };
    if (wantsRedis()) options.redis = { url: redisUrl(), keyPrefix: redisPrefix() };
    return { use: [rateLimit(options)] };
  },
  async 'circuit-breaker'() {
    const { circuitBreaker } = await requireExports('@perfstack/circuit-breaker', ['circuitBreaker']);
    return { use: [circuitBreaker()] };
  },
};
const build = builders[layer];
if (!build) throw new Error(`BENCH_LAYER must be one of ${Object.keys(builders).join(', ')}; got ${layer}`);
listen(http.createServer(await expressApp(await build())));
