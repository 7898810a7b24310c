/**
 * What every scenario server shares: the same routes, the same ~1 KB JSON body (built
 * once), the same POST body and answer, the same limits, and the READY handshake with
 * the harness. Keeping these in one place is what makes the scenarios comparable.
 */

/** The uncached JSON route every scenario serves. */
export const PRODUCTS_PATH = '/api/products';
/** The same body on a route that the caching scenarios cache (plain elsewhere). */
export const CACHED_PATH = '/api/cached';
/** POST route: parses a small JSON body and answers 201. */
export const POST_PATH = '/api/products';

/** The body limit every body-limiting layer is configured with. */
export const BODY_LIMIT_BYTES = 10 * 1024;
export const BODY_LIMIT = '10kb';
/** A rate limit that the benchmark never reaches: the limiter's allowed path is what is timed. */
export const RATE_LIMIT = 1_000_000_000;
export const RATE_WINDOW_MS = 60_000;

function buildProducts() {
  const items = [];
  for (let i = 1; i <= 10; i++) {
    items.push({
      id: i,
      sku: `SKU-${String(1000 + i)}`,
      name: `Product number ${i}`,
      price: Math.round(i * 7.35 * 100) / 100,
      inStock: i % 3 !== 0,
      tags: ['bench', i % 2 === 0 ? 'even' : 'odd'],
    });
  }
  return { page: 1, total: items.length, items };
}

/** The response body of GET /api/products, built once per process. */
export const products = buildProducts();
export const PRODUCTS_JSON = JSON.stringify(products);

/** The small JSON body the POST scenarios send. */
export const postPayload = { name: 'Bench widget', price: 9.99, tags: ['bench', 'small'] };
export const POST_BODY = JSON.stringify(postPayload);

/** What POST /api/products answers (201) for a parsed body. */
export function created(body) {
  return { id: 1001, name: body?.name ?? null, price: body?.price ?? null };
}

/** A body over {@link BODY_LIMIT_BYTES}: the size-limit checks expect 413 for it. */
export const OVERSIZE_BODY = JSON.stringify({ name: 'x'.repeat(BODY_LIMIT_BYTES * 2) });

/** The access-log file a logger scenario writes to (a temp dir chosen by the harness). */
export function logFile() {
  const file = process.env.BENCH_LOG_FILE;
  if (!file) throw new Error('BENCH_LOG_FILE is not set: logger scenarios write to a file, never stdout');
  return file;
}

/** The Redis URL for Redis scenarios. */
export function redisUrl() {
  return process.env.REDIS_URL || 'redis://127.0.0.1:6379';
}

/** The key prefix this run owns in Redis (the harness deletes only keys under it). */
export function redisPrefix() {
  return process.env.BENCH_REDIS_PREFIX || `perfstack-bench:${process.pid}:`;
}

/** True when the harness asked for the Redis variant of a scenario. */
export function wantsRedis() {
  return process.env.BENCH_REDIS === '1';
}

/**
 * Listens on 127.0.0.1:$PORT and tells the harness with `READY <port>` on stdout.
 * @param {import('node:http').Server} server
 */
export function listen(server) {
  const port = Number(process.env.PORT ?? 0);
  server.keepAliveTimeout = 65_000;
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`READY ${server.address().port}\n`);
  });
  const stop = () => {
    server.close();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}

/**
 * Tells the harness that this scenario cannot run (a perfstack export that does not
 * exist yet, no Redis): exit code 3 and an `UNAVAILABLE <reason>` line.
 */
export function unavailable(reason) {
  process.stdout.write(`UNAVAILABLE ${reason}\n`);
  process.exit(3);
}

/** Reads a JSON body up to `limit` bytes for node:http and Koa scenarios (no parser library there). */
export function readJsonBody(req, limit = BODY_LIMIT_BYTES) {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) {
      req.resume();
      reject(Object.assign(new Error('payload too large'), { status: 413 }));
      return;
    }
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(Object.assign(new Error('payload too large'), { status: 413 }));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        resolve(size === 0 ? {} : JSON.parse(Buffer.concat(chunks, size).toString('utf8')));
      } catch {
        reject(Object.assign(new Error('invalid JSON'), { status: 400 }));
      }
    });
    req.on('error', reject);
  });
}
