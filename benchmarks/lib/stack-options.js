/**
 * The options every full-stack scenario passes to `performanceStack()`: every layer on,
 * the same limits as the peers (10 kb body, a rate limit the run never reaches, CORS `*`), the
 * access log to a file, and — with BENCH_REDIS=1 — Redis under this run's key prefix.
 */
import { BODY_LIMIT, logFile, RATE_LIMIT, redisPrefix, redisUrl, wantsRedis } from './fixture.js';

/**
 * What the refusal scenarios change (`BENCH_REFUSE`): `429` — a limit of one request per
 * 15 minutes, so every timed request is over it; `open` — a breaker that opens after three
 * failures and stays open for an hour (the timed route always fails).
 */
const REFUSAL_OPTIONS = {
  429: { rateLimit: { limit: 1, window: '15m' } },
  open: { circuitBreaker: { failureThreshold: 3, resetTimeout: '1h' } },
};

/**
 * @param {(options: object) => any} factory the framework's performanceStack
 * @returns {Promise<any>} the stack
 */
export async function buildStack(factory) {
  const options = {
    sizeLimit: { limit: BODY_LIMIT },
    logger: { destination: logFile() },
    rateLimit: { limit: RATE_LIMIT, window: '1m' },
    // The preset's CORS allows no origin until told; the peers run cors() with its `*` default.
    cors: { origin: '*' },
    ...REFUSAL_OPTIONS[process.env.BENCH_REFUSE ?? ''],
  };
  // BENCH_RATE_LIMIT_STORE=memory: a cluster worker that limits on its own (the baseline the
  // cluster store's cost is measured against; see the stack-cluster-1-memory scenario).
  if (process.env.BENCH_RATE_LIMIT_STORE) {
    options.rateLimit = { ...options.rateLimit, store: process.env.BENCH_RATE_LIMIT_STORE };
  }
  // BENCH_RATE_LIMIT_LEASE=off: the cluster store without leased quota (every decision in the
  // primary, the protocol before leases; see the stack-cluster-*-nolease scenarios).
  if (process.env.BENCH_RATE_LIMIT_LEASE === 'off') {
    options.rateLimit = { ...options.rateLimit, lease: false };
  }
  // instructions.js runs the server under valgrind, ~50x slower: the event loop lags past
  // the 1 s shedding threshold although nothing is overloaded. Shedding stays on (its
  // per-request check still runs); only the threshold moves.
  if (process.env.BENCH_OVERLOAD_DELAY) {
    const overload = { maxEventLoopDelay: process.env.BENCH_OVERLOAD_DELAY };
    options.circuitBreaker = { ...options.circuitBreaker, overload };
  }
  // `redis: false` explicitly: the preset falls back to REDIS_URL, which a shell or CI may set.
  if (!wantsRedis()) return factory({ ...options, redis: false });
  // Prefer a shared connection under this run's prefix (so the harness can delete exactly
  // its keys); fall back to the documented `redis: url` when the preset takes only that.
  try {
    const { createSharedRedis } = await import('@perfstack/core');
    return factory({ ...options, redis: createSharedRedis({ url: redisUrl(), keyPrefix: redisPrefix() }) });
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    process.stderr.write(`performanceStack({ redis: SharedRedis }) refused (${error.message}); using the URL\n`);
    return factory({ ...options, redis: redisUrl() });
  }
}
