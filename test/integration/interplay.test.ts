/**
 * The interplay rules of ARCHITECTURE.md, proven through the whole preset (not a layer alone).
 */
import express from 'express';
import { cache, type PerformanceStack, type PerformanceStackOptions, performanceStack } from 'perfstack';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../helpers/http.js';
import { cleanPrefix, type RedisServerHandle, redisUrl, startRedisServer, uniquePrefix } from '../helpers/redis.js';

const quiet = { warn() {}, error() {} };
const base: PerformanceStackOptions = { env: false, log: quiet, logger: { destination: { write() {} } as never } };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(
  options: PerformanceStackOptions,
  routes: (app: express.Express, stack: PerformanceStack) => void,
) {
  const stack = performanceStack({ ...base, ...options });
  const app = express();
  app.use(stack);
  app.get('/health', stack.health());
  routes(app, stack);
  const server: TestServer = await listen(app);
  cleanups.push(async () => {
    await server.close();
    await stack.close();
  });
  return { stack, url: server.url };
}

describe('interplay rules through the preset', () => {
  it("never stores a Set-Cookie response, and never serves one client another one's cookie", async () => {
    let n = 0;
    const { url } = await serve({}, (app) => {
      app.get('/me', cache({ ttl: '1m' }), (_req, res) => {
        n++;
        res.cookie('session', `secret-${n}`);
        res.json({ n });
      });
    });
    const a = await request(`${url}/me`);
    expect(a.headers['set-cookie']).toEqual(['session=secret-1; Path=/']);
    const b = await request(`${url}/me`);
    expect(b.headers['x-cache']).not.toBe('HIT');
    expect(b.headers['set-cookie']).toEqual(['session=secret-2; Path=/']);
    expect(b.json()).toEqual({ n: 2 });
  });

  it('does not store answers to requests with Authorization or Cookie, unless the response is public', async () => {
    let n = 0;
    const { url } = await serve({}, (app) => {
      app.get('/private', cache({ ttl: '1m' }), (_req, res) => {
        n++;
        res.json({ n });
      });
      app.get('/public', (_req, res) => {
        n++;
        res.set('Cache-Control', 'public, max-age=60').json({ n });
      });
    });
    const withAuth = await request(`${url}/private`, { headers: { authorization: 'Bearer alice-token' } });
    expect(withAuth.json()).toEqual({ n: 1 });
    const anonymous = await request(`${url}/private`);
    expect(anonymous.json()).toEqual({ n: 2 });
    const withCookie = await request(`${url}/private`, { headers: { cookie: 'session=bob' } });
    expect(withCookie.headers['x-cache']).not.toBe('HIT');
    expect(withCookie.json()).not.toEqual({ n: 1 });
    await request(`${url}/public`, { headers: { authorization: 'Bearer alice-token' } });
    const shared = await request(`${url}/public`);
    expect(shared.headers['x-cache']).toBe('HIT');
  });

  it('answers from a stale entry when the breaker is open (stale-if-error), and 503 CIRCUIT_OPEN without one', async () => {
    let failing = false;
    const { url } = await serve(
      { circuitBreaker: { failureThreshold: 2, resetTimeout: '1m' }, rateLimit: false },
      (app) => {
        app.get('/quote', cache({ ttl: 50, staleIfError: '1m' }), (_req, res) => {
          if (failing) res.status(500).json({ error: 'upstream' });
          else res.json({ rate: 1.1 });
        });
        app.get('/nostale', (_req, res) => {
          res.status(500).json({ error: 'upstream' });
        });
      },
    );
    expect((await request(`${url}/quote`)).json()).toEqual({ rate: 1.1 });
    await new Promise((r) => setTimeout(r, 80));
    failing = true;
    // the origin fails: the stale copy answers
    const stale = await request(`${url}/quote`);
    expect(stale.status).toBe(200);
    expect(stale.headers['x-cache']).toBe('STALE');
    expect(stale.json()).toEqual({ rate: 1.1 });
    await request(`${url}/quote`);
    await request(`${url}/quote`);
    const health = await request(`${url}/health`);
    expect(health.json<{ checks: { circuitBreaker: { status: string } } }>().checks.circuitBreaker.status).toBe(
      'degraded',
    );
    // the breaker for /quote is open now, and still the stale copy answers
    const whileOpen = await request(`${url}/quote`);
    expect(whileOpen.status).toBe(200);
    expect(whileOpen.headers['x-cache']).toBe('STALE');
    expect(whileOpen.json()).toEqual({ rate: 1.1 });
    // a route with nothing stale gets the breaker's own answer once it opens
    await request(`${url}/nostale`);
    await request(`${url}/nostale`);
    await request(`${url}/nostale`);
    const open = await request(`${url}/nostale`);
    expect(open.status).toBe(503);
    expect(open.headers['retry-after']).toMatch(/^\d+$/);
    expect(open.json()).toMatchObject({ code: 'CIRCUIT_OPEN', status: 503 });
  });

  it('labels metrics by route pattern, and unmatched requests share one label', async () => {
    const { stack, url } = await serve({}, (app) => {
      app.get('/users/:id', (req, res) => {
        res.json({ id: req.params.id });
      });
    });
    for (let i = 0; i < 5; i++) await request(`${url}/users/${i}`);
    for (let i = 0; i < 5; i++) await request(`${url}/missing/${i}`);
    const text = await stack.registry.metrics();
    expect(text).toMatch(/http_requests_total\{[^}]*route="\/users\/:id"[^}]*\} 5/);
    expect(text).toMatch(/http_requests_total\{[^}]*route="unmatched"[^}]*\} 5/);
    expect(text).not.toMatch(/route="\/users\/\d"/);
    expect(text).not.toMatch(/route="\/missing/);
  });
});

describe('with Redis: one cache, one set of counters, one invalidation stream', () => {
  it("two instances share rate limits exactly, share cached entries, and see each other's invalidations", async () => {
    const url = await redisUrl();
    const keyPrefix = uniquePrefix('preset');
    cleanups.push(() => cleanPrefix(url, keyPrefix));
    let calls = 0;
    const routes = (app: express.Express) => {
      app.get('/products', cache({ ttl: '1m', tags: ['products'] }), (_req, res) => {
        calls++;
        res.json({ calls });
      });
      app.get('/ping', (_req, res) => {
        res.end('pong');
      });
    };
    const options: PerformanceStackOptions = {
      redis: { url, keyPrefix },
      rateLimit: { limit: 6, window: '1m', skip: (req) => (req.url ?? '').startsWith('/products') },
    };
    const a = await serve(options, routes);
    const b = await serve(options, routes);
    await waitFor(() => Boolean(a.stack.redis?.isUp && b.stack.redis?.isUp));
    // Both instances listen for "stored" announcements before A stores anything.
    await waitFor(async () => {
      const reply = (await a.stack.redis?.client.sendCommand(['PUBSUB', 'NUMSUB', `${keyPrefix}cache:events`])) as
        | [string, number]
        | undefined;
      return Number(reply?.[1]) >= 2;
    });

    // Both instances sit behind one load balancer: requests carry the public Host (part of the cache key).
    const lb = { headers: { host: 'shop.example' } };
    const fromA = await request(`${a.url}/products`, lb);
    expect(fromA.headers['x-cache']).toBe('MISS');
    // B learns over pub/sub that the route is cacheable (until then it costs B no Redis round trip)
    const engineOfB = (b.stack.cache as unknown as Record<symbol, { knows(key: string): boolean }>)[
      Symbol.for('perfstack.cache.engine')
    ];
    await waitFor(() => engineOfB?.knows('/products http://shop.example') === true, 5000);
    await waitFor(async () => (await request(`${b.url}/products`, lb)).headers['x-cache'] === 'HIT');
    expect(calls).toBe(1);
    expect(await a.stack.cache.invalidate({ tags: ['products'] })).toBeGreaterThan(0);
    await waitFor(async () => (await request(`${b.url}/products`, lb)).headers['x-cache'] === 'MISS', 2000);
    expect(calls).toBe(2);

    // one limit across both instances (the cached route is exempt from it here)
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await request(`${i % 2 ? a.url : b.url}/ping`)).status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(6);
    expect(statuses.filter((s) => s === 429)).toHaveLength(4);
  });

  it('keeps serving when Redis dies, says degraded in /health, and recovers', async () => {
    const redis: RedisServerHandle = await startRedisServer();
    cleanups.push(() => redis.stop());
    const { stack, url } = await serve(
      { redis: { url: redis.url, commandTimeout: 200, maxReconnectDelay: 100 }, rateLimit: { limit: 1000 } },
      (app) => {
        app.get('/products', cache({ ttl: '1m' }), (_req, res) => {
          res.json({ ok: true });
        });
      },
    );
    await waitFor(() => Boolean(stack.redis?.isUp));
    expect((await request(`${url}/products`)).status).toBe(200);
    expect((await request(`${url}/health`)).json()).toMatchObject({ status: 'ok' });
    await redis.stop();
    await waitFor(() => !stack.redis?.isUp, 5000);
    for (let i = 0; i < 20; i++) {
      const res = await request(`${url}/products`, { timeout: 3000 });
      expect(res.status).toBe(200);
    }
    const degraded = await request(`${url}/health`);
    expect(degraded.status).toBe(200);
    expect(degraded.json()).toMatchObject({ status: 'degraded' });
    await redis.start();
    await waitFor(() => Boolean(stack.redis?.isUp), 10_000);
    await waitFor(async () => (await request(`${url}/health`)).json<{ status: string }>().status === 'ok', 10_000);
  });
});
