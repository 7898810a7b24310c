/**
 * A small in-memory catalog behind a simulated slow data source: every read waits tens of
 * milliseconds, like a real database or upstream API would, so the cache's effect shows.
 */

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function createCatalog({ latencyMs = 40, failureRate = 0.3 } = {}) {
  const products = new Map();
  let nextId = 1;
  for (const [name, price] of [
    ['Espresso machine', 249],
    ['Burr grinder', 129],
    ['Milk jug', 19],
    ['Tamper', 29],
    ['Scale', 49],
  ]) {
    const id = String(nextId++);
    products.set(id, { id, name, price });
  }
  const jitter = () => latencyMs / 2 + Math.random() * latencyMs;
  return {
    async list() {
      await sleep(jitter());
      return [...products.values()];
    },
    async get(id) {
      await sleep(jitter());
      return products.get(id);
    },
    async create({ name, price }) {
      await sleep(jitter() / 2);
      const id = String(nextId++);
      const product = { id, name: String(name), price: Number(price) };
      products.set(id, product);
      return product;
    },
    /** An upstream that fails `failureRate` of the time (to show breakers and stale-if-error). */
    async flakyQuote() {
      await sleep(jitter());
      if (Math.random() < failureRate) throw new Error('upstream pricing service failed');
      return { currency: 'EUR', rate: 1 + Math.round(Math.random() * 100) / 1000 };
    },
  };
}

/** Validates a product body; returns an error message or undefined. */
export function invalidProduct(body) {
  if (typeof body !== 'object' || body === null) return 'body must be a JSON object';
  if (typeof body.name !== 'string' || body.name.length === 0 || body.name.length > 200)
    return 'name must be a string of 1 to 200 characters';
  if (typeof body.price !== 'number' || !Number.isFinite(body.price) || body.price < 0)
    return 'price must be a non-negative number';
  return undefined;
}

/** Stops the server gracefully on SIGTERM/SIGINT: no new connections, in-flight requests finish, then the stack closes. */
export function handleShutdown(server, stack, { graceMs = 10_000 } = {}) {
  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal} received: closing`);
    const force = setTimeout(() => {
      server.closeAllConnections?.();
      process.exit(1);
    }, graceMs);
    force.unref();
    server.close(async () => {
      await stack.close();
      process.exit(0);
    });
    server.closeIdleConnections?.();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/** The stack options every example uses (the same API on three frameworks). */
export function exampleStackOptions(redis, overrides = {}) {
  return {
    redis: redis || false,
    cors: { origin: ['http://localhost:5173', 'https://shop.example.com'] },
    rateLimit: { limit: 300, window: '1m' },
    circuitBreaker: { timeout: '2s', failureThreshold: 5, resetTimeout: '10s' },
    ...overrides,
  };
}

/** An http-errors style client error (`status`, `expose`), as body parsers raise them. */
function clientError(status, message) {
  return Object.assign(new Error(message), { status, statusCode: status, expose: true });
}

/**
 * Reads a small JSON body from a plain request stream (Koa and node:http have no parser here).
 * Like a real body parser it throws client errors with a `status`: 413 over `limit` (the rest
 * of the body is still read off, so the answer reaches the client; the stack's size limit
 * bounds it), 400 for malformed JSON.
 */
export async function readJson(req, limit = 10 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  if (size > limit) throw clientError(413, 'request entity too large');
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw clientError(400, 'the request body is not valid JSON');
  }
}
