import http from 'node:http';
import { createClient } from '@keyv/redis';
import { cache, type ResponseCache, responseCache } from '@perfstack/cache';
import { createSharedRedis, type SharedRedis, silentLogger } from '@perfstack/core';
import express from 'express';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanPrefix,
  type RedisServerHandle,
  redisUrl,
  startRedisServer,
  uniquePrefix,
} from '../../../test/helpers/redis.js';
import { request as direct, serverTracker, waitFor } from './helpers.js';

/**
 * Instances of one app sit behind one load balancer: every request carries the public
 * Host, whatever instance answers it (the cache key includes the authority).
 */
const HOST = 'shop.example';
const request: typeof direct = (url, options = {}) =>
  direct(url, { ...options, headers: { host: HOST, ...options.headers } });
/** The Redis key of an entry for a path on the public host. */
const entry = (prefix: string, path: string) => `${prefix}cache::${path} http://${HOST}`;

const servers = serverTracker();
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await servers.closeAll();
  for (const close of closers.splice(0).reverse()) await close();
});

async function connected(url: string, keyPrefix: string): Promise<SharedRedis> {
  const redis = createSharedRedis({ url, keyPrefix, logger: silentLogger, commandTimeout: 300 });
  closers.push(() => redis.close());
  await waitFor(() => redis.isUp, 5000);
  return redis;
}

function makeCache(redis: SharedRedis, options: Parameters<typeof responseCache>[0] = {}): ResponseCache {
  const c = responseCache({ redis, logger: silentLogger, ...options });
  closers.push(() => c.close());
  return c;
}

/** Waits until `count` connections listen on the cache channel (so pub/sub messages reach them). */
async function subscribers(url: string, channel: string, count: number): Promise<void> {
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  try {
    await waitFor(async () => {
      const reply = (await client.sendCommand(['PUBSUB', 'NUMSUB', channel])) as [string, number];
      return Number(reply[1]) >= count;
    }, 5000);
  } finally {
    await client.close();
  }
}

/** Listens on a channel like the instances do; resolves with the next message (B got it at the same moment). */
async function nextEvent(url: string, channel: string) {
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  closers.push(() => client.close());
  let deliver!: (message: string) => void;
  const message = new Promise<string>((resolve) => {
    deliver = resolve;
  });
  const ready = client.subscribe(channel, (m: string) => deliver(m));
  return {
    ready,
    message: message.then(async (m) => {
      await new Promise((r) => setTimeout(r, 20));
      return m;
    }),
  };
}

/** Every message on a channel, as they come. */
async function eventLog(url: string, channel: string): Promise<string[]> {
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  closers.push(() => client.close());
  const log: string[] = [];
  await client.subscribe(channel, (m: string) => log.push(m));
  return log;
}

/** An app behind `c` with counted routes. */
async function instance(c: ResponseCache, calls: Record<string, number>, delay = 0) {
  const app = express();
  app.use(c);
  const count = (name: string) => {
    calls[name] = (calls[name] ?? 0) + 1;
  };
  app.get('/products', cache({ ttl: '5m', tags: ['products'] }), (_req, res) => {
    count('products');
    setTimeout(() => res.json({ products: ['a', 'b'] }), delay);
  });
  app.get('/item/:id', cache({ ttl: '5m', tags: ['items'] }), (req, res) => {
    count('item');
    setTimeout(() => res.json({ id: req.params.id }), delay);
  });
  app.get('/live', (_req, res) => {
    count('live');
    res.send('live');
  });
  return servers.listen(app);
}

describe('L2 on a shared Redis: two instances', () => {
  let url: string;
  let prefix: string;
  beforeAll(async () => {
    url = await redisUrl();
  });
  afterEach(async () => {
    await cleanPrefix(url, prefix);
  });

  it('an entry stored by instance A is served by instance B from Redis, promoted to B memory', async () => {
    prefix = uniquePrefix('cache');
    const [ra, rb] = [await connected(url, prefix), await connected(url, prefix)];
    const a = makeCache(ra);
    const b = makeCache(rb);
    await subscribers(url, `${prefix}cache:events`, 2);
    const calls: Record<string, number> = {};
    const sa = await instance(a, calls);
    const sb = await instance(b, calls);
    const announced = nextEvent(url, `${prefix}cache:events`);
    await (await announced).ready;
    expect((await request(`${sa.url}/products`)).headers['x-cache']).toBe('MISS');
    expect(JSON.parse(await (await announced).message)).toMatchObject({
      op: 'stored',
      key: `/products http://${HOST}`,
    });
    expect(await ra.client.exists(entry(prefix, '/products'))).toBe(1);
    expect(b.stats().entries).toBe(0);
    const fromL2 = await request(`${sb.url}/products`);
    expect(fromL2.headers['x-cache']).toBe('HIT');
    expect(fromL2.json()).toEqual({ products: ['a', 'b'] });
    expect(b.stats().entries).toBe(1);
    expect(calls.products).toBe(1);
  });

  it('only-if-cached on instance B is answered by the entry instance A stored (L2), 504 only when none is', async () => {
    prefix = uniquePrefix('cache');
    const [ra, rb] = [await connected(url, prefix), await connected(url, prefix)];
    const a = makeCache(ra, { requestCacheControl: true });
    const b = makeCache(rb, { requestCacheControl: true });
    const calls: Record<string, number> = {};
    const sa = await instance(a, calls);
    const sb = await instance(b, calls);
    expect((await request(`${sa.url}/products`)).headers['x-cache']).toBe('MISS');
    await waitFor(async () => (await ra.client.exists(entry(prefix, '/products'))) === 1);
    expect(b.stats().entries).toBe(0);
    const onlyIfCached = { 'cache-control': 'only-if-cached' };
    const fromL2 = await request(`${sb.url}/products`, { headers: onlyIfCached });
    expect(fromL2.status).toBe(200);
    expect(fromL2.headers['x-cache']).toBe('HIT');
    expect(fromL2.json()).toEqual({ products: ['a', 'b'] });
    // Promoted to B's memory: the next one is an L1 hit.
    expect(b.stats().entries).toBe(1);
    expect((await request(`${sb.url}/products`, { headers: onlyIfCached })).headers['x-cache']).toBe('HIT');
    // Nothing stored anywhere for this URL: 504, and the origin is never asked.
    const none = await request(`${sb.url}/item/9`, { headers: onlyIfCached });
    expect(none.status).toBe(504);
    expect(none.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(none.json()).toEqual({
      type: 'urn:perfstack:problem:only-if-cached',
      title: 'Gateway Timeout',
      status: 504,
      detail: 'The request said only-if-cached and no stored response can answer it',
      code: 'ONLY_IF_CACHED',
    });
    expect(calls).toEqual({ products: 1 });
  });

  it('tag invalidation on instance A clears instance B within a second (pub/sub)', async () => {
    prefix = uniquePrefix('cache');
    const [ra, rb] = [await connected(url, prefix), await connected(url, prefix)];
    const a = makeCache(ra);
    const b = makeCache(rb);
    await subscribers(url, `${prefix}cache:events`, 2);
    const calls: Record<string, number> = {};
    const sa = await instance(a, calls);
    const sb = await instance(b, calls);
    const events = await eventLog(url, `${prefix}cache:events`);
    await request(`${sa.url}/item/1`);
    await request(`${sb.url}/item/2`);
    // Both instances have heard of both entries before they are asked for them.
    await waitFor(() => events.filter((e) => e.includes('"stored"')).length === 2);
    await new Promise((r) => setTimeout(r, 20));
    await waitFor(async () => (await request(`${sb.url}/item/1`)).headers['x-cache'] === 'HIT');
    await waitFor(async () => (await request(`${sa.url}/item/2`)).headers['x-cache'] === 'HIT');
    expect(calls.item).toBe(2);
    expect(await a.invalidate({ tags: ['items'] })).toBe(2);
    expect(await ra.client.exists(entry(prefix, '/item/1'))).toBe(0);
    expect(await ra.client.exists(`${prefix}cache-tag:items`)).toBe(0);
    await waitFor(() => b.stats().entries === 0, 1000);
    const after = await request(`${sb.url}/item/1`);
    expect(after.headers['x-cache']).toBe('MISS');
    expect(calls.item).toBe(3);
  });

  it('key and prefix invalidation reach Redis and the other instance', async () => {
    prefix = uniquePrefix('cache');
    const [ra, rb] = [await connected(url, prefix), await connected(url, prefix)];
    const a = makeCache(ra);
    const b = makeCache(rb);
    await subscribers(url, `${prefix}cache:events`, 2);
    const calls: Record<string, number> = {};
    const sa = await instance(a, calls);
    const sb = await instance(b, calls);
    for (const id of ['1', '2', '3']) await request(`${sa.url}/item/${id}`);
    await request(`${sa.url}/products`);
    await waitFor(async () => (await request(`${sb.url}/item/3`)).headers['x-cache'] === 'HIT');
    expect(await b.invalidate({ prefix: '/item/' })).toBe(3);
    await waitFor(() => a.stats().entries === 1, 1000);
    expect(await b.invalidate({ key: '/products' })).toBe(1);
    await waitFor(() => a.stats().entries === 0, 1000);
    expect(await ra.client.keys(`${prefix}cache::*`)).toEqual([]);
  });

  it('concurrent misses on two instances make one origin call (SET NX lock, then L2)', async () => {
    prefix = uniquePrefix('cache');
    const [ra, rb] = [await connected(url, prefix), await connected(url, prefix)];
    const a = makeCache(ra);
    const b = makeCache(rb);
    await subscribers(url, `${prefix}cache:events`, 2);
    const calls: Record<string, number> = {};
    const sa = await instance(a, calls, 150);
    const sb = await instance(b, calls, 150);
    // Both instances learn that /products is cacheable, then it is invalidated everywhere.
    await request(`${sa.url}/products`);
    await waitFor(async () => (await request(`${sb.url}/products`)).headers['x-cache'] === 'HIT');
    await a.invalidate({ key: '/products' });
    await waitFor(() => b.stats().entries === 0, 1000);
    calls.products = 0;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });
    const burst = await Promise.all(
      Array.from({ length: 40 }, (_, i) => request(`${i % 2 === 0 ? sa.url : sb.url}/products`, { agent })),
    );
    agent.destroy();
    expect(burst.every((r) => r.status === 200 && r.text === '{"products":["a","b"]}')).toBe(true);
    expect(calls.products).toBe(1);
    expect(burst.filter((r) => r.headers['x-cache'] === 'MISS')).toHaveLength(1);
  });
});

describe('Redis round trips (a private server, counted with INFO commandstats)', () => {
  let server: RedisServerHandle;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  async function admin() {
    const client = createClient({ url: server.url });
    client.on('error', () => {});
    await client.connect();
    closers.push(() => client.close());
    return client;
  }

  /** Waits until `count` invalidation-feed readers block on the stream (their connect-time commands are done). */
  async function feedReaders(client: Awaited<ReturnType<typeof admin>>, count: number): Promise<void> {
    await waitFor(async () => {
      const list = String(await client.sendCommand(['CLIENT', 'LIST']));
      return list.split('\n').filter((line) => line.includes('cmd=xread')).length >= count;
    }, 5000);
  }

  /**
   * Commands the server ran since the last reset, not counting our own INFO/CONFIG,
   * keep-alive PINGs, or the invalidation feed's background `XREAD BLOCK` (one per
   * instance every 250 ms, whatever the traffic).
   */
  async function commands(client: Awaited<ReturnType<typeof admin>>): Promise<Record<string, number>> {
    const info = await client.info('commandstats');
    const out: Record<string, number> = {};
    for (const line of info.split('\n')) {
      const m = /^cmdstat_([a-z|]+):calls=(\d+)/.exec(line.trim());
      if (m === null) continue;
      const name = m[1] as string;
      if (['info', 'config|resetstat', 'ping', 'xread', 'client|list'].includes(name)) continue;
      out[name] = Number(m[2]);
    }
    return out;
  }

  it('a route that never produced a cacheable response costs no Redis command, nor do L1 hits', async () => {
    const prefix = uniquePrefix('rt');
    const redis = await connected(server.url, prefix);
    const c = makeCache(redis);
    const calls: Record<string, number> = {};
    const s = await instance(c, calls);
    const stats = await admin();
    await subscribers(server.url, `${prefix}cache:events`, 1);
    await feedReaders(stats, 1);
    await stats.configResetStat();
    for (let i = 0; i < 20; i++) expect((await request(`${s.url}/live`)).status).toBe(200);
    for (let i = 0; i < 5; i++) await request(`${s.url}/live?page=${i}`);
    expect(await commands(stats)).toEqual({});
    // A cacheable response is written once to L2 (and announced)...
    await request(`${s.url}/products`);
    await waitFor(async () => (await commands(stats)).publish === 1);
    await stats.configResetStat();
    // ...and every hit after that is served from memory with no Redis command at all.
    for (let i = 0; i < 20; i++) expect((await request(`${s.url}/products`)).headers['x-cache']).toBe('HIT');
    expect(await commands(stats)).toEqual({});
    expect(calls).toEqual({ live: 25, products: 1 });
  });
});

describe('Redis trouble', () => {
  it('Redis stopped mid-run: no failed request, /health degraded, recovery is automatic', async () => {
    const server = await startRedisServer();
    closers.push(() => server.stop());
    const prefix = uniquePrefix('down');
    const redis = await connected(server.url, prefix);
    const c = makeCache(redis, { redisTimeout: 150 });
    const calls: Record<string, number> = {};
    const s = await instance(c, calls);
    expect(c.health().status).toBe('ok');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    let running = true;
    const failures: string[] = [];
    let served = 0;
    const paths = ['/products', '/item/1', '/item/2', '/live'];
    const load = (async () => {
      let i = 0;
      while (running) {
        const batch = await Promise.all(
          Array.from({ length: 8 }, () => request(`${s.url}${paths[i++ % paths.length]}?n=${i % 7}`, { agent })),
        );
        for (const r of batch) {
          served++;
          if (r.status !== 200) failures.push(`${r.status} ${r.text}`);
        }
        // Invalidate now and then so that L2 keeps being consulted.
        if (i % 40 === 0) await c.invalidate({ tags: ['items'] });
      }
    })();
    await waitFor(() => served > 100, 10_000);
    await server.stop();
    await waitFor(() => c.health().status === 'degraded', 5000);
    expect(c.health()).toMatchObject({ status: 'degraded', l2: 'down' });
    const before = served;
    await waitFor(() => served > before + 200, 10_000);
    await server.start();
    await waitFor(() => c.health().status === 'ok', 10_000);
    const afterRestart = served;
    await waitFor(() => served > afterRestart + 100, 10_000);
    running = false;
    await load;
    agent.destroy();
    expect(failures).toEqual([]);
    // L2 is in use again after the restart.
    await c.invalidate({ key: '/products?n=3' });
    await request(`${s.url}/products?n=3`);
    await waitFor(async () => (await redis.client.exists(entry(prefix, '/products?n=3'))) === 1, 5000);
  });

  it('a paused (unresponsive) Redis costs at most redisTimeout per L2 read, then the origin answers', async () => {
    const server = await startRedisServer();
    closers.push(async () => {
      server.resume();
      await server.stop();
    });
    const prefix = uniquePrefix('slow');
    const [ra, rb] = [await connected(server.url, prefix), await connected(server.url, prefix)];
    const a = makeCache(ra, { redisTimeout: 100 });
    const b = makeCache(rb, { redisTimeout: 100 });
    await subscribers(server.url, `${prefix}cache:events`, 2);
    const calls: Record<string, number> = {};
    const sa = await instance(a, calls);
    const sb = await instance(b, calls);
    await request(`${sa.url}/products`);
    await waitFor(async () => (await request(`${sb.url}/products`)).headers['x-cache'] === 'HIT');
    // B forgets its copy locally only; the key stays "known", so B's next miss asks Redis.
    (b as unknown as Record<symbol, { l1: { clear(): void } }>)[Symbol.for('perfstack.cache.engine')]?.l1.clear();
    server.pause();
    const res = await request(`${sb.url}/products`, { timeout: 5000 });
    expect(res.status).toBe(200);
    expect(res.headers['x-cache']).toBe('MISS');
    expect(res.json()).toEqual({ products: ['a', 'b'] });
    // Memory hits on A do not touch Redis at all, paused or not.
    expect((await request(`${sa.url}/products`, { timeout: 2000 })).headers['x-cache']).toBe('HIT');
    server.resume();
  });

  it('starts and serves with Redis unreachable from the start, and accepts a URL string', async () => {
    const c = responseCache({ redis: 'redis://127.0.0.1:1', logger: silentLogger });
    closers.push(() => c.close());
    const calls: Record<string, number> = {};
    const s = await instance(c, calls);
    await request(`${s.url}/products`);
    const hit = await request(`${s.url}/products`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(c.health().status).toBe('degraded');
    expect(await c.invalidate({ tags: ['products'] })).toBe(1);
  });
});
