/**
 * The hand-assembled Express peer stack: express-prom-bundle → apicache → express.json
 * limit → pino-http with redaction to a file → helmet → cors → express-rate-limit
 * (memory, or rate-limit-redis with BENCH_REDIS=1) → opossum.
 */
import http from 'node:http';
import { expressApp } from '../lib/apps.js';
import { listen, wantsRedis } from '../lib/fixture.js';
import { peerStack } from '../lib/peers.js';

listen(http.createServer(await expressApp({ use: await peerStack({ redis: wantsRedis() }), jsonParser: false })));
