/**
 * One peer library alone on Express, chosen by BENCH_PEER:
 * apicache (on GET /api/cached), express-rate-limit (BENCH_REDIS=1: rate-limit-redis),
 * rate-limiter-flexible, pino-http, helmet, cors, opossum, express-prom-bundle, express-json.
 */
import http from 'node:http';
import { expressApp } from '../lib/apps.js';
import { listen, wantsRedis } from '../lib/fixture.js';
import * as peers from '../lib/peers.js';

const peer = process.env.BENCH_PEER;
const builders = {
  apicache: () => ({ cacheRoute: [peers.apicacheRoute()] }),
  'express-rate-limit': async () => ({ use: [await peers.expressRateLimit({ redis: wantsRedis() })] }),
  'rate-limiter-flexible': () => ({ use: [peers.rateLimiterFlexible()] }),
  'pino-http': () => ({ use: [peers.pinoHttpMiddleware()] }),
  helmet: () => ({ use: [peers.helmetMiddleware()] }),
  cors: () => ({ use: [peers.corsMiddleware()] }),
  opossum: () => ({ use: [peers.opossumMiddleware()] }),
  'express-prom-bundle': () => ({ use: [peers.promMiddleware()] }),
  'express-json': () => ({ use: [peers.jsonParser()], jsonParser: false }),
};
const build = builders[peer];
if (!build) throw new Error(`BENCH_PEER must be one of ${Object.keys(builders).join(', ')}; got ${peer}`);
listen(http.createServer(await expressApp(await build())));
