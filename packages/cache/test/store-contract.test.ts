/**
 * One contract, two stores: the same suite runs against the in-process MemoryStore (once
 * per eviction policy, lru and tinylfu) and the RedisStore (real Redis, a unique key
 * prefix, cleaned up), so every behaviour the engine relies on (store/store.ts) holds on
 * either.
 */
import { MemoryStore, RedisStore } from '@perfstack/cache';
import { createSharedRedis, type SharedRedis, silentLogger } from '@perfstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanPrefix, redisUrl, uniquePrefix } from '../../../test/helpers/redis.js';
import { buildEntry, type Entry } from '../src/entry.js';
import type { CacheStore } from '../src/store/store.js';
import { waitFor } from './helpers.js';

const NOW = Date.UTC(2026, 0, 1);

function entry(
  body: string,
  options: { vary?: readonly [string, string][]; tags?: readonly string[]; status?: number } = {},
): Entry {
  const vary = options.vary ?? [];
  return buildEntry({
    status: options.status ?? 200,
    headers: {
      'content-type': 'text/plain',
      ...(vary.length > 0 ? { vary: vary.map(([name]) => name).join(', ') } : {}),
    },
    body: Buffer.from(body),
    identityLength: Buffer.byteLength(body),
    encoding: undefined,
    storedAt: NOW,
    expiresAt: NOW + 60_000,
    staleWhileRevalidate: 0,
    staleIfError: 0,
    initialAge: 0,
    shared: false,
    varyNames: vary.map(([name]) => name),
    varyValues: vary.map(([, value]) => value),
    tags: options.tags ?? [],
    route: '/contract',
  });
}

/** Bodies of the variants of `key`, sorted. */
async function bodies(store: CacheStore, key: string): Promise<string[]> {
  return (await store.readVariants(key)).map((e) => e.body.toString()).sort();
}

interface Subject {
  readonly name: string;
  make(): Promise<CacheStore>;
}

let redis: SharedRedis | undefined;
let url = '';
const prefix = uniquePrefix('contract');

beforeAll(async () => {
  url = await redisUrl();
});

afterAll(async () => {
  await redis?.close();
  await cleanPrefix(url, prefix);
});

let counter = 0;
const subjects: Subject[] = [
  {
    name: 'MemoryStore (lru)',
    make: async () => new MemoryStore({ maxEntries: 1000, maxBytes: 10_000_000, eviction: 'lru' }),
  },
  {
    name: 'MemoryStore (tinylfu)',
    make: async () => new MemoryStore({ maxEntries: 1000, maxBytes: 10_000_000, eviction: 'tinylfu' }),
  },
  {
    name: 'RedisStore',
    make: async () => {
      if (redis === undefined) {
        redis = createSharedRedis({ url, keyPrefix: prefix, logger: silentLogger, commandTimeout: 2000 });
        await waitFor(() => redis?.isUp === true, 5000);
      }
      // A fresh namespace per test inside the suite's prefix, like a fresh MemoryStore.
      const scoped = Object.create(redis, { keyPrefix: { value: `${prefix}${++counter}:` } }) as SharedRedis;
      return new RedisStore(scoped, 2000);
    },
  },
];

describe.each(subjects)('CacheStore contract: $name', ({ make }) => {
  it('reads nothing for a key never written', async () => {
    const store = await make();
    expect(await store.readVariants('/none')).toEqual([]);
  });

  it('writes and reads back an entry with its status, headers, body and times', async () => {
    const store = await make();
    await store.writeVariant('/a', entry('alpha', { status: 203 }), 60_000);
    const [read, ...rest] = await store.readVariants('/a');
    expect(rest).toEqual([]);
    expect(read?.status).toBe(203);
    expect(read?.body.toString()).toBe('alpha');
    expect(read?.headers['content-type']).toBe('text/plain');
    expect(read?.headers['content-length']).toBe('5');
    expect(read?.storedAt).toBe(NOW);
    expect(read?.expiresAt).toBe(NOW + 60_000);
    expect(read?.route).toBe('/contract');
  });

  it('an entry that does not vary replaces the previous one', async () => {
    const store = await make();
    await store.writeVariant('/a', entry('one'), 60_000);
    await store.writeVariant('/a', entry('two'), 60_000);
    expect(await bodies(store, '/a')).toEqual(['two']);
  });

  it('keeps one variant per vary value; a write replaces only its own variant', async () => {
    const store = await make();
    for (let i = 0; i < 20; i++) {
      await store.writeVariant('/v', entry(`lang-${i}`, { vary: [['accept-language', `l${i}`]] }), 60_000);
    }
    await store.writeVariant('/v', entry('lang-3-new', { vary: [['accept-language', 'l3']] }), 60_000);
    const read = await store.readVariants('/v');
    expect(read).toHaveLength(20);
    expect(read.find((e) => e.varyValues[0] === 'l3')?.body.toString()).toBe('lang-3-new');
    expect(read.find((e) => e.varyValues[0] === 'l7')?.body.toString()).toBe('lang-7');
    expect(read.every((e) => e.varyNames[0] === 'accept-language')).toBe(true);
  });

  it('a varying entry replaces a non-varying one, and a non-varying one replaces every variant', async () => {
    const store = await make();
    await store.writeVariant('/m', entry('plain'), 60_000);
    await store.writeVariant('/m', entry('en', { vary: [['accept-language', 'en']] }), 60_000);
    await store.writeVariant('/m', entry('fr', { vary: [['accept-language', 'fr']] }), 60_000);
    expect(await bodies(store, '/m')).toEqual(['en', 'fr']);
    await store.writeVariant('/m', entry('plain-again'), 60_000);
    expect(await bodies(store, '/m')).toEqual(['plain-again']);
  });

  it('deleteKeys removes every variant of the keys and counts the keys that existed', async () => {
    const store = await make();
    await store.writeVariant('/d1', entry('x', { vary: [['origin', 'a']] }), 60_000);
    await store.writeVariant('/d1', entry('y', { vary: [['origin', 'b']] }), 60_000);
    await store.writeVariant('/d2', entry('z'), 60_000);
    await store.writeVariant('/keep', entry('k'), 60_000);
    expect(await store.deleteKeys(['/d1', '/d2', '/missing'])).toBe(2);
    expect(await store.readVariants('/d1')).toEqual([]);
    expect(await store.readVariants('/d2')).toEqual([]);
    expect(await bodies(store, '/keep')).toEqual(['k']);
    expect(await store.deleteKeys([])).toBe(0);
  });

  it('takeTagged returns the keys under any of the tags, each once', async () => {
    const store = await make();
    await store.writeVariant('/t1', entry('1', { tags: ['red', 'blue'] }), 60_000);
    await store.writeVariant('/t2', entry('2', { tags: ['blue'] }), 60_000);
    await store.writeVariant('/t3', entry('3', { tags: ['green'] }), 60_000);
    expect((await store.takeTagged(['blue', 'red'])).sort()).toEqual(['/t1', '/t2']);
    expect(await store.takeTagged(['none'])).toEqual([]);
    expect(await store.deleteKeys(['/t1', '/t2'])).toBe(2);
    expect(await store.takeTagged(['red', 'blue'])).toEqual([]);
    expect(await store.takeTagged(['green'])).toEqual(['/t3']);
  });

  it('keysWithPrefix finds keys by prefix (glob characters are literal)', async () => {
    const store = await make();
    for (const key of ['/items/1', '/items/2', '/items*/x', '/other'])
      await store.writeVariant(key, entry(key), 60_000);
    expect((await store.keysWithPrefix('/items/')).sort()).toEqual(['/items/1', '/items/2']);
    expect(await store.keysWithPrefix('/items*')).toEqual(['/items*/x']);
    expect(await store.keysWithPrefix('/nothing')).toEqual([]);
  });
});

describe('RedisStore specifics', () => {
  it('a URL is one hash with a field per variant, expiring with its longest-lived variant', async () => {
    const store = (await subjects.find((s) => s.name === 'RedisStore')?.make()) as RedisStore;
    await store.writeVariant('/h', entry('en', { vary: [['accept-language', 'en']] }), 60_000);
    await store.writeVariant('/h', entry('fr', { vary: [['accept-language', 'fr']] }), 120_000);
    await store.writeVariant('/h', entry('de', { vary: [['accept-language', 'de']] }), 30_000);
    const client = (redis as SharedRedis).client;
    const name = store.entryKey('/h');
    expect(await client.type(name)).toBe('hash');
    expect(await client.hLen(name)).toBe(3);
    const ttl = await client.pTTL(name);
    expect(ttl).toBeGreaterThan(60_000);
    expect(ttl).toBeLessThanOrEqual(120_000);
  });

  it('the fill lock is held by one owner and released only by it', async () => {
    const store = (await subjects.find((s) => s.name === 'RedisStore')?.make()) as RedisStore;
    expect(await store.lock('/l\nvariant', 'a', 10_000)).toBe(true);
    expect(await store.lock('/l\nvariant', 'b', 10_000)).toBe(false);
    expect(await store.lock('/l\nother', 'b', 10_000)).toBe(true);
    await store.unlock('/l\nvariant', 'b');
    expect(await store.locked('/l\nvariant')).toBe(true);
    await store.unlock('/l\nvariant', 'a');
    expect(await store.locked('/l\nvariant')).toBe(false);
  });
});
