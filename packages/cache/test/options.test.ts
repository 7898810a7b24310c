import { cache, responseCache } from '@perfstack/cache';
import { describe, expect, it } from 'vitest';

describe('option validation', () => {
  const bad: Array<[string, Record<string, unknown>, RegExp]> = [
    ['ttl not a duration', { ttl: 'soon' }, /@perfstack\/cache: option "ttl" must be/],
    ['ttl zero', { ttl: 0 }, /option "ttl" must be a duration from 1ms/],
    ['ttl negative', { ttl: -5 }, /option "ttl"/],
    ['maxEntries fraction', { maxEntries: 1.5 }, /option "maxEntries" must be an integer/],
    ['maxEntries zero', { maxEntries: 0 }, /option "maxEntries"/],
    ['eviction unknown', { eviction: 'lfu' }, /option "eviction" must be one of "tinylfu", "lru"/],
    ['eviction not a string', { eviction: true }, /option "eviction" must be one of "tinylfu", "lru"/],
    ['maxBytes garbage', { maxBytes: '12 parsecs' }, /option "maxBytes"/],
    ['maxBytes too small', { maxBytes: 10 }, /option "maxBytes"/],
    [
      'maxEntryBytes over maxBytes',
      { maxBytes: '1mb', maxEntryBytes: '2mb' },
      /option "maxEntryBytes" must be at most maxBytes/,
    ],
    ['staleWhileRevalidate object', { staleWhileRevalidate: {} }, /option "staleWhileRevalidate"/],
    ['staleIfError NaN', { staleIfError: Number.NaN }, /option "staleIfError"/],
    ['statuses not array', { statuses: 200 }, /option "statuses" must be an array of integer HTTP statuses/],
    ['statuses out of range', { statuses: [200, 99] }, /option "statuses"/],
    ['compression unknown', { compression: 'zstd' }, /option "compression" must be "br", "gzip" or false/],
    ['compressThreshold zero', { compressThreshold: 0 }, /option "compressThreshold"/],
    ['skip not a function', { skip: '/dashboard' }, /option "skip" must be a function/],
    ['requestCacheControl string', { requestCacheControl: 'yes' }, /option "requestCacheControl" must be a boolean/],
    [
      'serveMemoryWhenStalled string',
      { serveMemoryWhenStalled: 'no' },
      /option "serveMemoryWhenStalled" must be a boolean/,
    ],
    ['lockTimeout zero', { lockTimeout: 0 }, /option "lockTimeout"/],
    ['warmStart negative', { warmStart: -1 }, /option "warmStart"/],
    ['warmStart fraction', { warmStart: 1.5 }, /option "warmStart"/],
    ['accessFlushInterval too short', { accessFlushInterval: 5 }, /option "accessFlushInterval"/],
    ['redisTimeout string', { redisTimeout: 'fast' }, /option "redisTimeout"/],
    ['now not a function', { now: 5 }, /option "now" must be a function/],
    ['redis number', { redis: 6379 }, /option "redis" must be a SharedRedis, a redis:\/\/ URL or a node-redis client/],
    ['redis bad url', { redis: 'http://localhost' }, /redis/],
    ['fleetBus without subscribe', { fleetBus: { publish() {} } }, /option "fleetBus" must be an object with publish/],
    ['fleetBus a string', { fleetBus: 'cluster' }, /option "fleetBus"/],
    ['logger without error()', { logger: { warn() {} } }, /option "logger"/],
    ['registry not a registry', { registry: {} }, /option "registry" must be a prom-client Registry/],
    ['unknown key', { tll: '1m' }, /unknown option "tll" for responseCache\(\)/],
  ];
  it.each(bad)('responseCache rejects %s', (_name, options, message) => {
    expect(() => responseCache(options as never)).toThrow(message);
  });

  it('rejects a non-object and the app.use(responseCache) mistake', () => {
    expect(() => responseCache('fast' as never)).toThrow(TypeError);
    const fakeRequest = { method: 'GET', headers: {}, url: '/' };
    expect(() => responseCache(fakeRequest as never)).toThrow(/call it first: app.use\(responseCache\(\)\)/);
  });

  const badRoute: Array<[string, Record<string, unknown>, RegExp]> = [
    ['ttl garbage', { ttl: 'forever' }, /option "ttl"/],
    ['tags not array', { tags: 'products' }, /option "tags" must be an array of strings/],
    ['tag with a newline', { tags: ['a\nb'] }, /option "tags" must be tags of 1 to 128 visible ASCII/],
    ['empty key', { key: '' }, /option "key" must be a string of 1 to 1024/],
    ['key number', { key: 5 }, /option "key" must be a function/],
    ['vary star', { vary: ['*'] }, /option "vary" must be header names/],
    ['vary with space', { vary: ['Accept Language'] }, /option "vary"/],
    ['private string', { private: 'no' }, /option "private" must be a boolean/],
    ['store not a cache', { store: new Map() }, /option "store" must be what responseCache\(\) returned/],
    ['unknown key', { ttls: 1 }, /unknown option "ttls" for cache\(\)/],
  ];
  it.each(badRoute)('cache() rejects %s', (_name, options, message) => {
    expect(() => cache(options as never)).toThrow(message);
  });

  it('accepts every documented option', async () => {
    const c = responseCache({
      ttl: '30s',
      maxEntries: 10,
      maxBytes: '1mb',
      eviction: 'lru',
      maxEntryBytes: '100kb',
      staleWhileRevalidate: '10s',
      staleIfError: 60_000,
      statuses: [200],
      compression: 'gzip',
      compressThreshold: '2kb',
      skip: () => false,
      requestCacheControl: true,
      lockTimeout: '1s',
      redisTimeout: 100,
      hitForPass: '5s',
      serveMemoryWhenStalled: false,
      warmStart: 50,
      accessFlushInterval: '2s',
      now: Date.now,
    });
    expect(c.health()).toEqual({ status: 'ok', l2: 'none', entries: 0 });
    expect(c.stats()).toEqual({
      hits: 0,
      misses: 0,
      stale: 0,
      bypass: 0,
      evictions: 0,
      warmStarted: 0,
      entries: 0,
      bytes: 0,
      hitRatio: 0,
      routes: {},
    });
    await c.close();
    await c.close();
    expect(() =>
      cache({ ttl: 1000, tags: ['a'], key: (req) => req.url ?? '/', vary: ['Origin'], private: false, store: c }),
    ).not.toThrow();
  });
});
