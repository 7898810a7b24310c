/**
 * The data cache with real Redis: L2 on the shared connection, one loader call across two
 * instances (100 concurrent `wrap` calls on each), one tag bus with the response cache on
 * every instance, a `set` on one instance dropping the others' memory copies, read counts
 * added in batches, and warm starts — a killed and restarted instance (a child process)
 * that answers its first requests for hot keys from memory, checked with `INFO commandstats`.
 *
 * Everything runs on a private redis-server started for this file (free port, no
 * persistence), so the command counts and the `XREAD` readers are ours alone.
 */
import { cache, createCache, type ResponseCache, responseCache } from '@perfstack/cache';
import { createSharedRedis, type SharedRedis, silentLogger } from '@perfstack/core';
import express from 'express';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServerHandle, startRedisServer, uniquePrefix } from '../../../test/helpers/redis.js';
import { instanceStarter, commandCalls as redisCommandCalls, request, serverTracker, waitFor } from './helpers.js';

let server: RedisServerHandle;
let admin: SharedRedis;
const closers: Array<() => Promise<void>> = [];
const servers = serverTracker();

beforeAll(async () => {
  server = await startRedisServer();
  admin = createSharedRedis({ url: server.url, logger: silentLogger });
  await waitFor(() => admin.isUp, 5000);
});
afterAll(async () => {
  await admin.close();
  await server.stop();
});
afterEach(async () => {
  await servers.closeAll();
  for (const close of closers.splice(0).reverse()) await close();
});

/** One "instance": its own connection (as another process would have) under a shared prefix. */
async function instance(prefix: string, options: Parameters<typeof createCache>[0] = {}) {
  const redis = createSharedRedis({ url: server.url, keyPrefix: prefix, logger: silentLogger });
  closers.push(() => redis.close());
  await waitFor(() => redis.isUp, 5000);
  const data = createCache({ redis, logger: silentLogger, ...options });
  closers.push(() => data.close());
  return { redis, data };
}

function responses(redis: SharedRedis): ResponseCache {
  const c = responseCache({ redis, logger: silentLogger, requestCacheControl: true });
  closers.push(() => c.close());
  return c;
}

/** Invalidation-stream readers connected (one `XREAD BLOCK` connection per cache). */
async function readers(count: number): Promise<void> {
  await waitFor(async () => {
    const list = String(await admin.client.sendCommand(['CLIENT', 'LIST']));
    return list.split('\n').filter((line) => line.includes('cmd=xread')).length >= count;
  }, 5000);
}

const commandCalls = () => redisCommandCalls(admin);

describe('L2 on the shared connection', () => {
  it('shares values between instances, Buffers kept, and keeps them under the cache key space', async () => {
    const prefix = uniquePrefix();
    const a = await instance(prefix);
    const b = await instance(prefix);
    expect(await a.data.set('user:1', { name: 'Ada', avatar: Buffer.from([1, 2, 3]) }, { tags: ['users'] })).toBe(true);
    const read = (await b.data.get('user:1')) as { name: string; avatar: Buffer };
    expect(read.name).toBe('Ada');
    expect(Buffer.isBuffer(read.avatar)).toBe(true);
    expect([...read.avatar]).toEqual([1, 2, 3]);
    expect(await admin.client.exists(`${prefix}cache::data:default:user:1`)).toBe(1);
    expect(await admin.client.sMembers(`${prefix}cache-tag:users`)).toEqual(['data:default:user:1']);
    const ttl = await admin.client.pTTL(`${prefix}cache::data:default:user:1`);
    expect(ttl).toBeGreaterThan(299_000);
    expect(ttl).toBeLessThanOrEqual(300_000);
    expect(await b.data.getMany(['user:1', 'nope'])).toEqual([read, undefined]);
    // a corrupt or foreign record is a miss, never an error
    await admin.client.set(`${prefix}cache::data:default:junk`, 'not ours');
    expect(await b.data.get('junk')).toBeUndefined();
  });

  it('a set on one instance drops the older copy the others hold in memory', async () => {
    const prefix = uniquePrefix();
    const a = await instance(prefix);
    const b = await instance(prefix);
    await readers(2);
    await a.data.set('k', 'v1');
    expect(await b.data.get('k')).toBe('v1');
    await a.data.set('k', 'v2');
    await waitFor(async () => (await b.data.get('k')) === 'v2', 5000);
    expect(await a.data.get('k')).toBe('v2');
    await a.data.delete('k');
    await waitFor(async () => (await b.data.get('k')) === undefined, 5000);
  });
});

describe('stampede protection across instances', () => {
  it('100 concurrent wrap calls on each of two instances call fn once', async () => {
    const prefix = uniquePrefix();
    const a = await instance(prefix);
    const b = await instance(prefix);
    let calls = 0;
    const fn = async () => {
      calls++;
      await new Promise((resolve) => setTimeout(resolve, 300));
      return { price: 42, calls };
    };
    const all = await Promise.all([
      ...Array.from({ length: 100 }, () => a.data.wrap('quote', fn, { ttl: '1m' })),
      ...Array.from({ length: 100 }, () => b.data.wrap('quote', fn, { ttl: '1m' })),
    ]);
    expect(calls).toBe(1);
    for (const value of all) expect(value).toEqual({ price: 42, calls: 1 });
    // the lock was released by its owner
    expect(await admin.client.exists(`${prefix}cache-lock:data:default:quote`)).toBe(0);
  });
});

describe('one tag bus', () => {
  it('invalidate({ tags }) on the data cache or the response cache clears both kinds of entry on every instance', async () => {
    const prefix = uniquePrefix();
    const made = await Promise.all([instance(prefix), instance(prefix)]);
    const nodes = await Promise.all(
      made.map(async ({ redis, data }) => {
        const layer = responses(redis);
        let served = 0;
        const app = express();
        app.use(layer);
        app.get('/products', cache({ ttl: '5m', tags: ['products'] }), (_req, res) => {
          served++;
          res.json({ served });
        });
        const http = await servers.listen(app);
        return { layer, data, url: `${http.url}/products`, served: () => served };
      }),
    );
    await readers(4);
    const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
    const prime = async () => {
      for (const node of nodes) {
        await request(node.url, { headers: { host: 'shop.example' } });
        expect((await request(node.url, { headers: { host: 'shop.example' } })).headers['x-cache']).toBe('HIT');
        await node.data.set('product:1', { name: 'pen' }, { tags: ['products'] });
        await node.data.set('unrelated', 1, { tags: ['other'] });
      }
    };
    const clearedEverywhere = () =>
      waitFor(async () => {
        for (const node of nodes) {
          if ((await node.data.get('product:1')) !== undefined) return false;
          const res = await request(node.url, { headers: { host: 'shop.example', 'cache-control': 'only-if-cached' } });
          if (res.status !== 504) return false;
        }
        return true;
      }, 5000);

    await prime();
    expect(await a.data.invalidate({ tags: ['products'] })).toBeGreaterThanOrEqual(1);
    await clearedEverywhere();
    expect(await admin.client.exists(`${prefix}cache::data:default:product:1`)).toBe(0);
    expect(await admin.client.exists(`${prefix}cache::/products http://shop.example`)).toBe(0);
    expect(await b.data.get('unrelated')).toBe(1);

    await prime();
    await a.layer.invalidate({ tags: ['products'] });
    await clearedEverywhere();
    expect(await admin.client.exists(`${prefix}cache::data:default:product:1`)).toBe(0);
    expect(await admin.client.exists(`${prefix}cache::/products http://shop.example`)).toBe(0);
    expect(await b.data.get('unrelated')).toBe(1);
  });
});

describe('read counts and warm starts', () => {
  it('adds reads to Redis in batches, not one round trip per read', async () => {
    const prefix = uniquePrefix();
    const { data } = await instance(prefix, { accessFlushInterval: '1h' });
    await data.set('a', 1);
    await data.set('b', 2);
    await admin.client.sendCommand(['CONFIG', 'RESETSTAT']);
    for (let i = 0; i < 100; i++) await data.wrap('a', () => 1);
    for (let i = 0; i < 30; i++) await data.get('b');
    expect((await commandCalls()).zincrby).toBeUndefined();
    await data.engine.flushReads();
    const calls = await commandCalls();
    expect(calls.zincrby).toBe(2);
    expect(calls.get).toBeUndefined();
    expect(await admin.client.zScore(`${prefix}cache-hot:data`, 'data:default:a')).toBe(100);
    expect(await admin.client.zScore(`${prefix}cache-hot:data`, 'data:default:b')).toBe(30);
  });

  it('a killed and restarted instance answers its first requests for hot keys from memory (no Redis read)', async () => {
    const prefix = uniquePrefix();
    const start = instanceStarter(
      'data-instance.mjs',
      { REDIS_URL: server.url, KEY_PREFIX: prefix, WARM_START: '5', FLUSH_MS: '50' },
      (kill) => closers.push(kill),
    );
    const get = async (port: number, path: string) => (await request(`http://127.0.0.1:${port}${path}`)).json<never>();

    const first = await start();
    expect(first.warmed).toBe(0);
    // items 0-4 are hot, 5-9 read once
    for (let round = 0; round < 5; round++) for (let i = 0; i < 5; i++) await get(first.port, `/item/${i}`);
    for (let i = 5; i < 10; i++) await get(first.port, `/item/${i}`);
    const original = await get(first.port, '/item/0');
    await waitFor(async () => Number(await admin.client.zCard(`${prefix}cache-hot:data`)) === 10, 5000);
    await waitFor(
      async () => Number(await admin.client.zScore(`${prefix}cache-hot:data`, 'data:default:item:4')) === 5,
      5000,
    );
    first.child.kill('SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));

    const second = await start();
    expect(second.warmed).toBe(5);
    await admin.client.sendCommand(['CONFIG', 'RESETSTAT']);
    for (let i = 0; i < 5; i++) {
      expect(await get(second.port, `/item/${i}`)).toEqual({ id: String(i), loadedBy: first.child.pid });
    }
    expect(await get(second.port, '/item/0')).toEqual(original);
    let calls = await commandCalls();
    for (const read of ['get', 'mget', 'hgetall', 'zrange', 'exists', 'set']) expect(calls[read]).toBeUndefined();
    // a cold key is read from Redis: the check above can fail
    expect(await get(second.port, '/item/7')).toEqual({ id: '7', loadedBy: first.child.pid });
    calls = await commandCalls();
    expect(calls.get).toBe(1);
    expect(await get(second.port, '/loads')).toEqual({ loads: 0 });
  });
});
