/**
 * The data cache in memory (no Redis): every call, namespaces, the serializer, the size
 * bounds, stampede protection in one process, stale-while-revalidate, refresh-ahead on a
 * clock the test moves, the tag bus with the response cache, metrics, and bad options.
 * Redis (L2, two instances, warm starts) is in data-cache-redis.test.ts.
 */

import { cache, createCache, type DataCache, jsonSerializer, linkTagBus, responseCache } from '@perfstack/cache';
import { createRegistry, silentLogger } from '@perfstack/core';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { manualClock, request, serverTracker } from './helpers.js';

const caches: DataCache[] = [];
const servers = serverTracker();
afterEach(async () => {
  await servers.closeAll();
  await Promise.all(caches.splice(0).map((c) => c.close()));
});

function make(options: Parameters<typeof createCache>[0] = {}): DataCache {
  const c = createCache({ logger: silentLogger, ...options });
  caches.push(c);
  return c;
}

/** Lets pending promise callbacks run (background refreshes resolve on the microtask queue). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('get, set, delete, getMany, setMany', () => {
  it('stores, reads, expires by ttl and deletes', async () => {
    const clock = manualClock();
    const data = make({ now: clock.now, ttl: '1m' });
    expect(await data.get('a')).toBeUndefined();
    expect(await data.set('a', { n: 1 })).toBe(true);
    expect(await data.set('b', 'two', { ttl: 1000 })).toBe(true);
    expect(await data.get('a')).toEqual({ n: 1 });
    expect(await data.get('b')).toBe('two');
    clock.advance(1000);
    expect(await data.get('b')).toBeUndefined();
    expect(await data.get('a')).toEqual({ n: 1 });
    clock.advance(59_000);
    expect(await data.get('a')).toBeUndefined();
    await data.set('c', 3);
    expect(await data.delete('c')).toBe(true);
    expect(await data.delete('c')).toBe(false);
    expect(await data.get('c')).toBeUndefined();
    const stats = data.stats();
    expect(stats.namespaces.default).toEqual({
      entries: 0,
      bytes: 0,
      evictions: 0,
      hits: 3,
      misses: 4,
      stale: 0,
      hitRatio: 3 / 7,
      refreshesAhead: 0,
      warmStarted: 0,
    });
  });

  it('getMany keeps the order and setMany stores several at once', async () => {
    const data = make();
    expect(
      await data.setMany([
        { key: 'x', value: 1 },
        { key: 'y', value: [2] },
        { key: 'u', value: undefined },
      ]),
    ).toBe(2);
    expect(await data.getMany(['y', 'missing', 'x', 'u'])).toEqual([[2], undefined, 1, undefined]);
    expect(data.stats().entries).toBe(2);
  });

  it('keeps Buffers, nested Buffers and keys that look like its markers; refuses what JSON cannot hold', async () => {
    const data = make();
    const text = jsonSerializer.serialize({
      file: Buffer.from([0, 1, 255]),
      '\u0000buf': 'AAE=',
      list: [new Uint8Array([7])],
    });
    const back = jsonSerializer.deserialize(text) as Record<string, unknown>;
    expect(Buffer.isBuffer(back.file)).toBe(true);
    expect([...(back.file as Buffer)]).toEqual([0, 1, 255]);
    expect(back['\u0000buf']).toBe('AAE=');
    expect(Buffer.isBuffer((back.list as unknown[])[0])).toBe(true);
    expect(jsonSerializer.deserialize(jsonSerializer.serialize({ '\u0000buf': 'AAE=' }))).toEqual({
      '\u0000buf': 'AAE=',
    });
    expect(jsonSerializer.deserialize('{"__proto__":{"polluted":1}}')).toEqual(
      JSON.parse('{"__proto__":{"polluted":1}}'),
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await expect(data.set('big', 10n)).rejects.toThrow(TypeError);
    await expect(data.set('fn', () => 1)).rejects.toThrow('cannot be stored as JSON');
    expect(await data.set('buf', Buffer.from('hi'))).toBe(true);
    expect(Buffer.isBuffer(await data.get('buf'))).toBe(true);
  });

  it('takes a pluggable serializer (bytes are fine too)', async () => {
    const calls: string[] = [];
    const data = make({
      serializer: {
        serialize: (value) => {
          calls.push('serialize');
          return Buffer.from(String(value));
        },
        deserialize: (raw) => raw.toString(),
      },
    });
    await data.set('k', 'v');
    expect(calls).toEqual(['serialize']);
    expect(await data.get('k')).toBe('v');
  });

  it('bounds sizes: maxEntryBytes skips a value, maxEntries and maxBytes evict', async () => {
    const data = make({ maxEntryBytes: 1000, maxBytes: 10_000, maxEntries: 5, eviction: 'lru' });
    expect(await data.set('huge', 'x'.repeat(2000))).toBe(false);
    expect(await data.get('huge')).toBeUndefined();
    expect(await data.wrap('huge2', () => 'y'.repeat(2000))).toHaveLength(2000);
    expect(await data.get('huge2')).toBeUndefined();
    for (let i = 0; i < 8; i++) await data.set(`k${i}`, i);
    const stats = data.stats();
    expect(stats.entries).toBe(5);
    expect(stats.evictions).toBe(3);
    expect(stats.bytes).toBeLessThanOrEqual(10_000);
    expect(await data.get('k0')).toBeUndefined();
    expect(await data.get('k7')).toBe(7);
  });
});

describe('wrap', () => {
  it('calls fn once per key for concurrent calls, then serves the value', async () => {
    const data = make();
    let calls = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const fn = async () => {
      calls++;
      await gate;
      return { at: calls };
    };
    const pending = Array.from({ length: 100 }, () => data.wrap('k', fn));
    release();
    const values = await Promise.all(pending);
    expect(calls).toBe(1);
    expect(values.every((v) => v === values[0])).toBe(true);
    expect(await data.wrap('k', fn)).toEqual({ at: 1 });
    expect(calls).toBe(1);
  });

  it('passes errors on and stores nothing; undefined is returned, not stored', async () => {
    const data = make();
    await expect(data.wrap('e', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await data.wrap('e', () => 'ok')).toBe('ok');
    let calls = 0;
    await data.wrap('u', () => {
      calls++;
      return undefined;
    });
    await data.wrap('u', () => {
      calls++;
      return undefined;
    });
    expect(calls).toBe(2);
  });

  it('serves stale within staleWhileRevalidate while one call refreshes', async () => {
    const clock = manualClock();
    const data = make({ now: clock.now, refreshAhead: false });
    let version = 0;
    let release: () => void = () => {};
    const fn = async () => {
      const mine = ++version;
      if (mine > 1) await new Promise<void>((resolve) => (release = resolve));
      return mine;
    };
    const options = { ttl: 1000, staleWhileRevalidate: 5000 };
    expect(await data.wrap('s', fn, options)).toBe(1);
    clock.advance(2000);
    expect(await data.wrap('s', fn, options)).toBe(1);
    expect(await data.wrap('s', fn, options)).toBe(1);
    expect(version).toBe(2);
    release();
    await settle();
    expect(await data.wrap('s', fn, options)).toBe(2);
    clock.advance(7000);
    const late = data.wrap('s', fn, options);
    await settle();
    release();
    expect(await late).toBe(3);
    expect(data.stats().namespaces.default?.stale).toBe(2);
  });

  it('refresh-ahead: a hot key never misses across 10 lifetimes', async () => {
    const clock = manualClock();
    const data = make({ now: clock.now, refreshAhead: 0.8, refreshAheadHits: 2 });
    let loads = 0;
    const fn = async () => {
      loads++;
      return `v${loads}`;
    };
    await data.wrap('hot', fn, { ttl: 1000 });
    expect(data.stats().misses).toBe(1);
    // 10 lifetimes, read 3 times every 50 ms.
    for (let t = 0; t < 10_000; t += 50) {
      clock.advance(50);
      for (let i = 0; i < 3; i++) expect(await data.wrap('hot', fn, { ttl: 1000 })).toMatch(/^v\d+$/);
      await settle();
    }
    const stats = data.stats();
    expect(stats.misses).toBe(1);
    expect(stats.stale).toBe(0);
    expect(stats.hits).toBe(600);
    // one refresh per lifetime, at 80 % of it (800 ms): 10000 / 800 → 12 refreshes, each counted
    expect(stats.refreshesAhead).toBe(12);
    expect(loads).toBe(13);
  });

  it('refresh-ahead waits for refreshAheadHits reads in the last part of the lifetime', async () => {
    const clock = manualClock();
    const data = make({ now: clock.now, refreshAhead: 0.5, refreshAheadHits: 3 });
    let loads = 0;
    const fn = () => ++loads;
    await data.wrap('k', fn, { ttl: 1000 });
    clock.advance(400);
    for (let i = 0; i < 5; i++) await data.wrap('k', fn, { ttl: 1000 });
    await settle();
    expect(loads).toBe(1);
    clock.advance(100);
    await data.wrap('k', fn, { ttl: 1000 });
    await data.wrap('k', fn, { ttl: 1000 });
    await settle();
    expect(loads).toBe(1);
    await data.wrap('k', fn, { ttl: 1000 });
    await settle();
    expect(loads).toBe(2);
    expect(data.stats().refreshesAhead).toBe(1);
  });

  it('does not store a value computed across an invalidation', async () => {
    const data = make();
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const pending = data.wrap(
      'k',
      async () => {
        await gate;
        return 'old';
      },
      { tags: ['t'] },
    );
    await data.invalidate({ tags: ['t'] });
    release();
    expect(await pending).toBe('old');
    expect(await data.get('k')).toBeUndefined();
  });
});

describe('namespaces and invalidation', () => {
  it('keeps namespaces apart and counts them apart', async () => {
    const data = make();
    const users = data.namespace('users');
    expect(data.namespace('users')).toBe(users);
    await data.set('1', 'default one');
    await users.set('1', 'user one');
    expect(await data.get('1')).toBe('default one');
    expect(await users.get('1')).toBe('user one');
    await users.invalidate({ key: '1' });
    expect(await users.get('1')).toBeUndefined();
    expect(await data.get('1')).toBe('default one');
    const stats = data.stats();
    expect(stats.namespaces.users?.misses).toBe(1);
    expect(stats.namespaces.users?.hits).toBe(1);
    expect(stats.namespaces.default?.hits).toBe(2);
    expect(() => data.namespace('a:b')).toThrow(TypeError);
  });

  it('invalidates by key, by prefix (in the namespace) and by tags (in every namespace)', async () => {
    const data = make();
    const other = data.namespace('other');
    await data.set('user:1', 1, { tags: ['users'] });
    await data.set('user:2', 2);
    await data.set('post:1', 3, { tags: ['posts'] });
    await other.set('user:9', 9, { tags: ['users'] });
    expect(await data.invalidate({ prefix: 'user:' })).toBe(2);
    expect(await data.getMany(['user:1', 'user:2', 'post:1'])).toEqual([undefined, undefined, 3]);
    expect(await other.get('user:9')).toBe(9);
    expect(await data.invalidate({ tags: ['users', 'posts'] })).toBe(2);
    expect(await other.get('user:9')).toBeUndefined();
    expect(await data.get('post:1')).toBeUndefined();
    for (const bad of [{}, { key: 'a', tags: ['b'] }, { prefix: '' }, { tags: [] }, { tags: [1] }, null]) {
      await expect(data.invalidate(bad as never)).rejects.toThrow(TypeError);
    }
  });

  it('one tag bus without Redis: the response cache and the data cache clear each other by tag', async () => {
    const responses = responseCache({ logger: silentLogger });
    caches.push({ close: () => responses.close() } as DataCache);
    const data = make();
    linkTagBus(responses, data);
    let served = 0;
    const app = express();
    app.use(responses);
    app.get('/products', cache({ ttl: '1m', tags: ['products'] }), (_req, res) => {
      served++;
      res.json({ served });
    });
    const server = await servers.listen(app);
    const get = () => request(`${server.url}/products`);
    expect((await get()).headers['x-cache']).toBe('MISS');
    expect((await get()).headers['x-cache']).toBe('HIT');
    await data.set('product:1', { name: 'pen' }, { tags: ['products'] });
    await data.set('other', 1, { tags: ['other'] });
    // from the data cache: the response entry goes too
    await data.invalidate({ tags: ['products'] });
    const after = await get();
    expect(after.headers['x-cache']).toBe('MISS');
    expect(after.json()).toEqual({ served: 2 });
    // from the response cache: the data entry goes too
    await data.set('product:1', { name: 'pen' }, { tags: ['products'] });
    await responses.invalidate({ tags: ['products'] });
    expect(await data.get('product:1')).toBeUndefined();
    expect(await data.get('other')).toBe(1);
    expect((await get()).headers['x-cache']).toBe('MISS');
  });
});

describe('warm', () => {
  it('fills the keys that are not fresh with the loader, once each', async () => {
    const data = make();
    await data.set('a', 'kept');
    const loaded: string[] = [];
    expect(
      await data.warm(['a', 'b', 'c'], (key) => {
        loaded.push(key);
        return key.toUpperCase();
      }),
    ).toBe(3);
    expect(loaded).toEqual(['b', 'c']);
    expect(await data.getMany(['a', 'b', 'c'])).toEqual(['kept', 'B', 'C']);
  });
});

describe('warm (the response cache)', () => {
  it('fills response entries on demand by asking the app, under the key real requests use', async () => {
    const responses = responseCache({ logger: silentLogger });
    caches.push({ close: () => responses.close() } as DataCache);
    let served = 0;
    const app = express();
    app.use(responses);
    app.get('/products', cache({ ttl: '1m' }), (_req, res) => {
      served++;
      res.json({ served });
    });
    app.get('/private', (_req, res) => {
      res.setHeader('Cache-Control', 'no-store');
      res.json({ private: true });
    });
    const server = await servers.listen(app);
    expect(
      await responses.warm([
        `${server.url}/products`,
        { url: `${server.url}/products`, headers: { host: 'shop.example' } },
        `${server.url}/private`,
      ]),
    ).toBe(2);
    expect(served).toBe(2);
    const hit = await request(`${server.url}/products`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.json()).toEqual({ served: 1 });
    const publicHost = await request(`${server.url}/products`, { headers: { host: 'shop.example' } });
    expect(publicHost.headers['x-cache']).toBe('HIT');
    expect(served).toBe(2);
    await expect(responses.warm(['/relative'])).rejects.toThrow(TypeError);
  });
});

describe('metrics', () => {
  it('exports per-namespace counters and memory gauges on the registry, with bounded labels', async () => {
    const registry = createRegistry();
    const data = make({ registry });
    await data.wrap('a', () => 1);
    await data.wrap('a', () => 1);
    await data.namespace('users').get('x');
    const text = await registry.metrics();
    expect(text).toContain('perfstack_data_cache_hits_total{namespace="default"} 1');
    expect(text).toContain('perfstack_data_cache_misses_total{namespace="default"} 1');
    expect(text).toContain('perfstack_data_cache_misses_total{namespace="users"} 1');
    expect(text).toContain('perfstack_data_cache_entries 1');
    expect(text).toContain('perfstack_data_cache_refreshes_ahead_total{namespace="default"} 0');
    expect(text).toContain('perfstack_data_cache_warm_started_total{namespace="default"} 0');
    expect(text).toMatch(/perfstack_data_cache_bytes [1-9]\d*/);
    expect(text).toContain('perfstack_data_cache_evictions_total 0');
    for (let i = 0; i < 98; i++) data.namespace(`n${i}`);
    expect(() => data.namespace('one-too-many')).toThrow(RangeError);
  });
});

describe('options', () => {
  const bad: Array<[string, Record<string, unknown>]> = [
    ['ttl', { ttl: 0 }],
    ['ttl', { ttl: 'soon' }],
    ['maxEntries', { maxEntries: 0 }],
    ['maxBytes', { maxBytes: -1 }],
    ['maxEntryBytes', { maxBytes: 100, maxEntryBytes: 200 }],
    ['eviction', { eviction: 'lfu' }],
    ['serializer', { serializer: JSON }],
    ['refreshAhead', { refreshAhead: 1 }],
    ['refreshAhead', { refreshAhead: true }],
    ['refreshAheadHits', { refreshAheadHits: 0 }],
    ['warmStart', { warmStart: -1 }],
    ['namespace', { namespace: 'a:b' }],
    ['redis', { redis: 42 }],
    ['now', { now: 1 }],
    ['unknown option "max"', { max: 1 }],
  ];
  it.each(bad)('rejects a bad %s', (name, options) => {
    expect(() => createCache(options as never)).toThrow(name);
  });

  it('rejects bad calls', async () => {
    const data = make();
    await expect(data.get('')).rejects.toThrow(TypeError);
    await expect(data.set('k', 1, { ttl: -1 })).rejects.toThrow(RangeError);
    await expect(data.set('k', 1, { tags: [''] })).rejects.toThrow(TypeError);
    await expect(data.wrap(1 as never, () => 1)).rejects.toThrow(TypeError);
    await expect(data.wrap('k', 1 as never)).rejects.toThrow(TypeError);
  });
});
