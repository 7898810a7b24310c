/**
 * The response cache's warm start with real Redis: read counts per URL added to
 * `<prefix>cache-hot:responses` in batches; a killed and restarted instance (a child
 * process, real HTTP) that answers its first requests for the hot URLs from memory — no
 * Redis read (`INFO commandstats`), no app call, the stored status, headers and body —
 * while a URL it did not warm goes its ordinary way; stale entries, URLs whose record is
 * gone and URLs stored meanwhile are not warmed; and a Redis that is down at start holds
 * nothing up.
 *
 * Everything runs on a private redis-server started for this file (free port, no
 * persistence), so the command counts are ours alone.
 */
import http from 'node:http';
import { type ResponseCache, responseCache } from '@perfstack/cache';
import { createSharedRedis, silentLogger } from '@perfstack/core';
import { afterEach, describe, expect, it } from 'vitest';
import { uniquePrefix } from '../../../test/helpers/redis.js';
import {
  instanceStarter,
  manualClock,
  privateRedis,
  commandCalls as redisCommandCalls,
  request,
  serverTracker,
  waitFor,
} from './helpers.js';

const local = privateRedis();
const closers: Array<() => Promise<void>> = [];
const servers = serverTracker();
const HOST = { host: 'shop.example' };

afterEach(async () => {
  await servers.closeAll();
  for (const close of closers.splice(0).reverse()) await close();
});

const commandCalls = () => redisCommandCalls(local.admin);

/** Every command that reads an entry record, a lock or the ranking. */
const READS = ['hgetall', 'hmget', 'hget', 'get', 'mget', 'exists', 'zrange', 'set', 'eval'];

/** The cache key of a path on {@link HOST}. */
const keyOf = (path: string) => `${path} http://shop.example`;

/** An in-process instance: its own connection under `prefix`, the cache in front of an app with these routes. */
async function instance(
  prefix: string,
  options: Parameters<typeof responseCache>[0],
  cacheControl: Record<string, string>,
) {
  const redis = createSharedRedis({ url: local.server.url, keyPrefix: prefix, logger: silentLogger });
  closers.push(() => redis.close());
  const responses: ResponseCache = responseCache({ redis, logger: silentLogger, ...options });
  closers.push(() => responses.close());
  const calls: string[] = [];
  const app = await servers.listen(
    http.createServer((req, res) =>
      responses(req, res, () => {
        calls.push(req.url ?? '');
        res.setHeader('Cache-Control', cacheControl[req.url ?? ''] ?? 'no-store');
        res.setHeader('Content-Type', 'text/plain');
        if (req.url?.startsWith('/vary')) {
          res.setHeader('Vary', 'Accept-Language');
          res.end(`body of ${req.url} in ${req.headers['accept-language']}`);
        } else res.end(`body of ${req.url}`);
      }),
    ),
  );
  const get = (path: string, headers: Record<string, string> = {}) =>
    request(`${app.url}${path}`, { headers: { ...HOST, ...headers } });
  return { redis, responses, calls, get };
}

describe('response cache: read counts', () => {
  it('adds reads per URL to Redis in batches (one MULTI per interval, and at close), not per request', async () => {
    const prefix = uniquePrefix();
    const a = await instance(prefix, { accessFlushInterval: '1h' }, { '/a': 'max-age=60', '/b': 'max-age=60' });
    await waitFor(() => a.redis.isUp, 5000);
    await local.admin.client.sendCommand(['CONFIG', 'RESETSTAT']);
    for (let i = 0; i < 10; i++) expect((await a.get('/a')).headers['x-cache']).toBe(i === 0 ? 'MISS' : 'HIT');
    for (let i = 0; i < 3; i++) await a.get('/b');
    expect((await commandCalls()).zincrby).toBeUndefined();
    await a.responses.close();
    const calls = await commandCalls();
    expect(calls.zincrby).toBe(2);
    expect(await local.admin.client.zRangeWithScores(`${prefix}cache-hot:responses`, 0, -1)).toEqual([
      { value: keyOf('/b'), score: 3 },
      { value: keyOf('/a'), score: 10 },
    ]);
    expect(a.calls).toEqual(['/a', '/b']);
  });

  it('counts nothing with warmStart: 0', async () => {
    const prefix = uniquePrefix();
    const a = await instance(prefix, { warmStart: 0, accessFlushInterval: 10 }, { '/a': 'max-age=60' });
    await waitFor(() => a.redis.isUp, 5000);
    for (let i = 0; i < 3; i++) await a.get('/a');
    await a.responses.close();
    expect(await local.admin.client.exists(`${prefix}cache-hot:responses`)).toBe(0);
    expect(await a.responses.ready).toBe(0);
  });
});

describe('response cache: warm start', () => {
  it('a killed and restarted instance answers its first requests for hot URLs from memory (no Redis read, no app call)', async () => {
    const prefix = uniquePrefix();
    const start = instanceStarter(
      'response-instance.mjs',
      { REDIS_URL: local.server.url, KEY_PREFIX: prefix, WARM_START: '5', FLUSH_MS: '50' },
      (kill) => closers.push(kill),
    );
    const get = (port: number, path: string) => request(`http://127.0.0.1:${port}${path}`, { headers: HOST });
    const appCalls = async (port: number) => (await get(port, '/calls')).json<{ calls: number }>().calls;

    const first = await start();
    expect(first.warmed).toBe(0);
    // pages 0-4 are hot (5 reads each), 5-9 read once
    for (let round = 0; round < 5; round++) for (let i = 0; i < 5; i++) await get(first.port, `/page/${i}`);
    for (let i = 5; i < 10; i++) await get(first.port, `/page/${i}`);
    const originals = await Promise.all([0, 1, 2, 3, 4].map((i) => get(first.port, `/page/${i}`)));
    expect(await appCalls(first.port)).toBe(10);
    const hot = `${prefix}cache-hot:responses`;
    await waitFor(async () => Number(await local.admin.client.zCard(hot)) === 10, 5000);
    await waitFor(async () => {
      const scores = await Promise.all([0, 1, 2, 3, 4].map((i) => local.admin.client.zScore(hot, keyOf(`/page/${i}`))));
      return scores.every((score) => score === 6);
    }, 5000);
    first.child.kill('SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));

    await local.admin.client.sendCommand(['CONFIG', 'RESETSTAT']);
    const second = await start();
    expect(second.warmed).toBe(5);
    // The warm start's own reads: one ranking read, one HGETALL per hot URL (the counts see this store's reads).
    const warming = await commandCalls();
    expect(warming.zrange).toBe(1);
    expect(warming.hgetall).toBe(5);

    await local.admin.client.sendCommand(['CONFIG', 'RESETSTAT']);
    for (let i = 0; i < 5; i++) {
      const res = await get(second.port, `/page/${i}`);
      const original = originals[i];
      expect(res.status).toBe(200);
      expect(res.headers['x-cache']).toBe('HIT');
      expect(res.text).toBe(JSON.stringify({ page: String(i), servedBy: first.child.pid }));
      expect(res.text).toBe(original?.text);
      for (const name of ['content-type', 'cache-control', 'x-app', 'date', 'content-length']) {
        expect(res.headers[name]).toBe(original?.headers[name]);
      }
      expect(Number(res.headers.age)).toBeGreaterThanOrEqual(0);
    }
    const calls = await commandCalls();
    for (const read of READS) expect(calls[read]).toBeUndefined();
    expect(await appCalls(second.port)).toBe(0);

    // A URL it did not warm goes its ordinary way: this instance never saw it stored, so the
    // app answers (no Redis read: DESIGN.md's rule for keys not known to be stored) and it is written.
    const cold = await get(second.port, '/page/7');
    expect(cold.status).toBe(200);
    expect(cold.headers['x-cache']).toBe('MISS');
    expect(cold.text).toBe(JSON.stringify({ page: '7', servedBy: second.child.pid }));
    expect(await appCalls(second.port)).toBe(1);
    await waitFor(async () => (await commandCalls()).hset === 1, 5000);
    expect((await commandCalls()).hgetall).toBeUndefined();
  });

  it('loads fresh entries with their variants; skips stale ones and URLs whose record is gone', async () => {
    const prefix = uniquePrefix();
    const clock = manualClock(Date.now());
    const routes = {
      '/fresh': 'max-age=3600',
      '/stale': 'max-age=10, stale-while-revalidate=600',
      '/gone': 'max-age=3600',
      '/vary': 'max-age=3600',
    };
    const a = await instance(prefix, { now: clock.now, accessFlushInterval: '1h' }, routes);
    await waitFor(() => a.redis.isUp, 5000);
    for (const path of ['/fresh', '/stale', '/gone']) for (let i = 0; i < 3; i++) await a.get(path);
    for (const language of ['en', 'fr']) await a.get('/vary', { 'accept-language': language });
    const record = (path: string) => `${prefix}cache::${keyOf(path)}`;
    await waitFor(async () => {
      const sizes = await Promise.all(
        ['/fresh', '/stale', '/gone', '/vary'].map((p) => local.admin.client.hLen(record(p))),
      );
      return sizes.join() === '1,1,1,2';
    }, 5000);
    await a.responses.close();
    expect(Number(await local.admin.client.zCard(`${prefix}cache-hot:responses`))).toBe(4);
    await local.admin.client.del(record('/gone'));
    // /stale is past its freshness: within stale-while-revalidate, and still in Redis
    clock.advance(20_000);
    expect(Number(await local.admin.client.exists(record('/stale')))).toBe(1);

    const b = await instance(prefix, { now: clock.now, warmStart: 10 }, routes);
    expect(await b.responses.ready).toBe(3);
    expect(b.responses.stats()).toMatchObject({ warmStarted: 3, entries: 3 });
    const fresh = await b.get('/fresh');
    expect([fresh.status, fresh.headers['x-cache'], fresh.headers.age, fresh.text]).toEqual([
      200,
      'HIT',
      '20',
      'body of /fresh',
    ]);
    for (const language of ['en', 'fr']) {
      const varied = await b.get('/vary', { 'accept-language': language });
      expect([varied.headers['x-cache'], varied.headers.vary, varied.text]).toEqual([
        'HIT',
        'Accept-Language',
        `body of /vary in ${language}`,
      ]);
    }
    const stale = await b.get('/stale');
    expect([stale.headers['x-cache'], stale.text]).toEqual(['MISS', 'body of /stale']);
    const gone = await b.get('/gone');
    expect([gone.headers['x-cache'], gone.text]).toEqual(['MISS', 'body of /gone']);
    expect(b.calls).toEqual(['/stale', '/gone']);
  });

  it('serves at once when Redis is down at start, and warms nothing', async () => {
    const prefix = uniquePrefix();
    const routes = { '/page': 'max-age=3600' };
    const a = await instance(prefix, { accessFlushInterval: '1h' }, routes);
    await waitFor(() => a.redis.isUp, 5000);
    await a.get('/page');
    await a.get('/page');
    await waitFor(async () => Number(await local.admin.client.exists(`${prefix}cache::${keyOf('/page')}`)) === 1, 5000);
    await a.responses.close();
    expect(Number(await local.admin.client.zScore(`${prefix}cache-hot:responses`, keyOf('/page')))).toBe(2);
    await local.server.stop();
    let b: Awaited<ReturnType<typeof instance>>;
    try {
      b = await instance(prefix, {}, routes);
      // Redis is down until after these: had the warm start held requests up, they would hang.
      const first = await b.get('/page');
      expect([first.status, first.headers['x-cache'], first.text]).toEqual([200, 'MISS', 'body of /page']);
      const second = await b.get('/page');
      expect([second.status, second.headers['x-cache'], second.text]).toEqual([200, 'HIT', 'body of /page']);
      expect(b.calls).toEqual(['/page']);
      expect(b.responses.health().status).toBe('degraded');
      expect(b.responses.stats().warmStarted).toBe(0);
    } finally {
      await local.server.start();
      await waitFor(() => local.admin.isUp, 10_000);
    }
    // The restarted server has no data (no persistence); or the bounded wait ran out: nothing loaded.
    expect(await b.responses.ready).toBe(0);
    expect(b.responses.stats().warmStarted).toBe(0);
  });
});
