import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { cache, type ResponseCache } from '@perfstack/cache';
import { createRegistry, ensureRequestId } from '@perfstack/core';
import express from 'express';
import { describe, expect, it } from 'vitest';
import { cacheTracker, manualClock, request, serverTracker } from './helpers.js';

// Express 4 is installed as `express4` (an npm alias without types); its API here is Express's.
const express4 = createRequire(import.meta.url)('express4') as typeof express;

const servers = serverTracker();
const { make } = cacheTracker(servers);

/** An app with the request-id step before the cache, as the preset orders them. */
function appWith(c: ResponseCache) {
  const app = express();
  app.use((req, res, next) => {
    ensureRequestId(req, res);
    next();
  });
  app.use(c);
  return app;
}

describe('responseCache on Express 5: storing and serving', () => {
  it('serves an opted-in route from memory: MISS then HIT with Age, X-Cache and Server-Timing', async () => {
    const clock = manualClock();
    const c = make({ now: clock.now });
    const app = appWith(c);
    let calls = 0;
    app.get('/products', cache({ ttl: '5m', tags: ['products'] }), (_req, res) => {
      calls++;
      res.json({ products: [1, 2, 3] });
    });
    const { url } = await servers.listen(app);
    const first = await request(`${url}/products`);
    expect(first.status).toBe(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers.age).toBeUndefined();
    expect(first.headers['server-timing']).toMatch(/^cache;dur=[\d.]+;desc=miss$/);
    clock.advance(3000);
    const second = await request(`${url}/products`);
    expect(second.status).toBe(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.headers.age).toBe('3');
    expect(second.headers['server-timing']).toMatch(/^cache;dur=[\d.]+;desc=hit$/);
    expect(second.json()).toEqual({ products: [1, 2, 3] });
    expect(second.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(second.headers['content-length']).toBe(String(first.body.length));
    expect(second.headers.etag).toBe(first.headers.etag);
    expect(calls).toBe(1);
    // Each hit carries its own request id, never the stored one.
    expect(second.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(second.headers['x-request-id']).not.toBe(first.headers['x-request-id']);
    const kept = await request(`${url}/products`, { headers: { 'x-request-id': 'client-id-1' } });
    expect(kept.headers['x-request-id']).toBe('client-id-1');
    // Fresh for 5 minutes, then fetched again.
    clock.advance(5 * 60_000);
    const expired = await request(`${url}/products`);
    expect(expired.headers['x-cache']).toBe('MISS');
    expect(calls).toBe(2);
    expect(c.stats()).toMatchObject({ hits: 2, misses: 2, stale: 0, bypass: 0, entries: 1, hitRatio: 0.5 });
    expect(c.stats().routes['/products']).toEqual({
      hits: 2,
      misses: 2,
      stale: 0,
      bypass: 0,
      hitRatio: 0.5,
      ttlMs: 300_000,
    });
  });

  it('stores what the app itself marks cacheable (RFC 9111 shared cache: max-age with or without public), and s-maxage overrides the route ttl', async () => {
    const clock = manualClock();
    const c = make({ now: clock.now, ttl: '1h' });
    const app = appWith(c);
    let calls = 0;
    app.get('/public', (_req, res) => {
      calls++;
      res.set('Cache-Control', 'public, max-age=10').send('public');
    });
    app.get('/shared', cache({ ttl: '1h' }), (_req, res) => {
      calls++;
      res.set('Cache-Control', 'max-age=600, s-maxage=2').send('shared');
    });
    app.get('/plain', (_req, res) => {
      calls++;
      res.send('not opted in');
    });
    app.get('/max-age-only', (_req, res) => {
      calls++;
      // Before issue 14 only `public` responses were stored; RFC 9111 §3 stores any explicit freshness.
      res.set('Cache-Control', 'max-age=60').send('not public, still storable');
    });
    const { url } = await servers.listen(app);
    for (const path of ['/public', '/shared', '/plain', '/max-age-only']) {
      await request(`${url}${path}`);
      await request(`${url}${path}`);
    }
    expect(calls).toBe(5);
    expect((await request(`${url}/public`)).headers['x-cache']).toBe('HIT');
    expect((await request(`${url}/max-age-only`)).headers['x-cache']).toBe('HIT');
    expect((await request(`${url}/plain`)).headers['x-cache']).toBe('MISS');
    clock.advance(2000);
    expect((await request(`${url}/shared`)).headers['x-cache']).toBe('MISS');
    clock.advance(8000);
    expect((await request(`${url}/public`)).headers['x-cache']).toBe('MISS');
  });

  it('never stores no-store, private, Set-Cookie, uncacheable statuses, or Vary: *', async () => {
    const c = make();
    const app = appWith(c);
    const calls: Record<string, number> = {};
    const route = (path: string, handler: express.RequestHandler) =>
      app.get(path, cache({ ttl: '1m' }), (req, res, next) => {
        calls[path] = (calls[path] ?? 0) + 1;
        handler(req, res, next);
      });
    route('/no-store', (_req, res) => res.set('Cache-Control', 'no-store').send('x'));
    route('/private', (_req, res) => res.set('Cache-Control', 'private, max-age=60').send('x'));
    route('/cookie', (_req, res) => res.cookie('session', 'secret-of-client-a').send('welcome'));
    route('/error', (_req, res) => res.status(500).send('boom'));
    route('/created', (_req, res) => res.status(201).send('made'));
    route('/vary-star', (_req, res) => res.set('Vary', '*').send('x'));
    route('/gone', (_req, res) => res.status(410).send('gone'));
    const { url } = await servers.listen(app);
    for (const path of ['/no-store', '/private', '/cookie', '/error', '/created', '/vary-star', '/gone']) {
      const a = await request(`${url}${path}`);
      const b = await request(`${url}${path}`);
      expect(a.headers['x-cache']).toBe('MISS');
      if (path === '/gone') {
        expect(b.headers['x-cache']).toBe('HIT');
        expect(b.status).toBe(410);
      } else {
        expect(b.headers['x-cache']).toBe('MISS');
      }
      if (path === '/cookie') {
        // The second client gets its own answer from the app, never client A's cookie from a cache.
        expect(b.headers['set-cookie']).toEqual(['session=secret-of-client-a; Path=/']);
      }
    }
    expect(calls).toEqual({
      '/no-store': 2,
      '/private': 2,
      '/cookie': 2,
      '/error': 2,
      '/created': 2,
      '/vary-star': 2,
      '/gone': 1,
    });
  });

  it('does not store or serve for requests with Authorization or Cookie unless the route says private: false', async () => {
    const c = make();
    const app = appWith(c);
    let mine = 0;
    let shared = 0;
    app.get('/me', cache({ ttl: '1m' }), (req, res) => {
      mine++;
      res.send(`hello ${req.headers.authorization ?? 'anonymous'}`);
    });
    app.get('/catalog', cache({ ttl: '1m', private: false }), (_req, res) => {
      shared++;
      res.send('catalog');
    });
    const { url } = await servers.listen(app);
    const a = await request(`${url}/me`, { headers: { authorization: 'Bearer alice' } });
    expect(a.headers['x-cache']).toBe('BYPASS');
    const b = await request(`${url}/me`, { headers: { authorization: 'Bearer bob' } });
    expect(b.text).toBe('hello Bearer bob');
    expect(b.headers['x-cache']).toBe('BYPASS');
    // An anonymous entry is never served to a request with a cookie either.
    await request(`${url}/me`);
    expect((await request(`${url}/me`)).headers['x-cache']).toBe('HIT');
    const withCookie = await request(`${url}/me`, { headers: { cookie: 'sid=1' } });
    expect(withCookie.headers['x-cache']).toBe('BYPASS');
    expect(mine).toBe(4);
    await request(`${url}/catalog`, { headers: { cookie: 'sid=1' } });
    const hit = await request(`${url}/catalog`, { headers: { authorization: 'Bearer x' } });
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(shared).toBe(1);
  });

  it('never stores or replays per-request headers (RateLimit, Retry-After, Set-Cookie stays out, Server-Timing, Cache-Tag)', async () => {
    const c = make();
    const app = appWith(c);
    let remaining = 10;
    app.use((_req, res, next) => {
      // An inner rate limiter, as in the documented order.
      remaining--;
      res.setHeader('RateLimit-Policy', '10;w=60');
      res.setHeader('RateLimit', `limit=10, remaining=${remaining}, reset=60`);
      res.setHeader('X-RateLimit-Remaining', String(remaining));
      res.setHeader('Retry-After', '5');
      next();
    });
    app.get('/data', cache({ ttl: '1m' }), (_req, res) => {
      res.setHeader('Cache-Tag', 'data, all');
      res.setHeader('Server-Timing', 'db;dur=5');
      res.setHeader('X-Custom', 'kept');
      res.send('data');
    });
    const { url } = await servers.listen(app);
    const miss = await request(`${url}/data`);
    expect(miss.headers.ratelimit).toBe('limit=10, remaining=9, reset=60');
    expect(miss.headers['cache-tag']).toBeUndefined();
    const hit = await request(`${url}/data`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.headers.ratelimit).toBeUndefined();
    expect(hit.headers['ratelimit-policy']).toBeUndefined();
    expect(hit.headers['x-ratelimit-remaining']).toBeUndefined();
    expect(hit.headers['retry-after']).toBeUndefined();
    expect(hit.headers['cache-tag']).toBeUndefined();
    expect(hit.headers['server-timing']).toMatch(/^cache;dur=[\d.]+;desc=hit$/);
    expect(hit.headers['x-custom']).toBe('kept');
    expect(remaining).toBe(9);
    // Tags from the Cache-Tag header work for invalidation.
    expect(await c.invalidate({ tags: ['all'] })).toBe(1);
    expect((await request(`${url}/data`)).headers['x-cache']).toBe('MISS');
  });

  it('honours Vary: two CORS origins get their own Access-Control-Allow-Origin', async () => {
    const c = make();
    const app = appWith(c);
    let calls = 0;
    app.use((req, res, next) => {
      if (req.headers.origin) res.setHeader('Access-Control-Allow-Origin', req.headers.origin);
      res.append('Vary', 'Origin');
      next();
    });
    app.get('/api', cache({ ttl: '1m' }), (_req, res) => {
      calls++;
      res.json({ ok: true });
    });
    const { url } = await servers.listen(app);
    const a1 = await request(`${url}/api`, { headers: { origin: 'https://a.example' } });
    const b1 = await request(`${url}/api`, { headers: { origin: 'https://b.example' } });
    const a2 = await request(`${url}/api`, { headers: { origin: 'https://a.example' } });
    const b2 = await request(`${url}/api`, { headers: { origin: 'https://b.example' } });
    const none = await request(`${url}/api`);
    expect([a1, b1, a2, b2, none].map((r) => r.headers['x-cache'])).toEqual(['MISS', 'MISS', 'HIT', 'HIT', 'MISS']);
    expect(a2.headers['access-control-allow-origin']).toBe('https://a.example');
    expect(b2.headers['access-control-allow-origin']).toBe('https://b.example');
    expect(none.headers['access-control-allow-origin']).toBeUndefined();
    expect(a2.headers.vary).toBe('Origin');
    expect(calls).toBe(3);
    expect(c.stats().entries).toBe(3);
  });

  it('adds route vary headers to Vary and keys variants by them', async () => {
    const c = make();
    const app = appWith(c);
    app.get('/hello', cache({ ttl: '1m', vary: ['Accept-Language'] }), (req, res) => {
      res.send(req.headers['accept-language'] === 'fr' ? 'bonjour' : 'hello');
    });
    const { url } = await servers.listen(app);
    await request(`${url}/hello`, { headers: { 'accept-language': 'fr' } });
    const en = await request(`${url}/hello`, { headers: { 'accept-language': 'en' } });
    const fr = await request(`${url}/hello`, { headers: { 'accept-language': 'fr' } });
    expect(en.text).toBe('hello');
    expect(en.headers['x-cache']).toBe('MISS');
    expect(fr.text).toBe('bonjour');
    expect(fr.headers['x-cache']).toBe('HIT');
    expect(fr.headers.vary).toBe('accept-language');
  });

  it('answers conditional requests from the cache with 304', async () => {
    const c = make();
    const app = appWith(c);
    let calls = 0;
    app.get('/doc', cache({ ttl: '1m' }), (_req, res) => {
      calls++;
      res.set('Last-Modified', 'Wed, 01 Jan 2025 00:00:00 GMT').send('document body');
    });
    const { url } = await servers.listen(app);
    const first = await request(`${url}/doc`);
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^W\/"/);
    const inm = await request(`${url}/doc`, { headers: { 'if-none-match': etag } });
    expect(inm.status).toBe(304);
    expect(inm.body.length).toBe(0);
    expect(inm.headers['x-cache']).toBe('HIT');
    expect(inm.headers.etag).toBe(etag);
    expect(inm.headers['content-length']).toBeUndefined();
    const list = await request(`${url}/doc`, { headers: { 'if-none-match': `"nope", ${etag.slice(2)}` } });
    expect(list.status).toBe(304);
    const other = await request(`${url}/doc`, { headers: { 'if-none-match': '"other"' } });
    expect(other.status).toBe(200);
    expect(other.text).toBe('document body');
    const ims = await request(`${url}/doc`, { headers: { 'if-modified-since': 'Thu, 02 Jan 2025 00:00:00 GMT' } });
    expect(ims.status).toBe(304);
    const older = await request(`${url}/doc`, { headers: { 'if-modified-since': 'Tue, 31 Dec 2024 00:00:00 GMT' } });
    expect(older.status).toBe(200);
    expect(calls).toBe(1);
  });

  it('ignores garbage If-None-Match, If-Modified-Since, Cache-Control and Accept-Encoding: never a 500', async () => {
    for (const requestCacheControl of [false, true]) {
      const c = make({ requestCacheControl });
      const app = appWith(c);
      app.get('/g', cache({ ttl: '1m' }), (_req, res) => res.send('fine'));
      const { url } = await servers.listen(app);
      await request(`${url}/g`);
      const garbage: Array<Record<string, string>> = [
        { 'if-none-match': '\u00ff\u00fe"""W/W/,,,,\t*x' },
        { 'if-none-match': 'x'.repeat(8000) },
        { 'if-modified-since': 'not a date at all' },
        { 'if-modified-since': '9'.repeat(300) },
        { 'cache-control': 'max-age=, =, no-cache=", s-maxage=-1, max-age=99999999999999999999' },
        { 'cache-control': ',,,;;;===' },
        { 'cache-control': 'max-age="abc"' },
        { 'accept-encoding': 'br;q=abc, *;q=, ,,;' },
        { pragma: '\u00ff' },
        { 'if-none-match': '*, W/', 'if-modified-since': '' },
      ];
      for (const headers of garbage) {
        const res = await request(`${url}/g`, { headers });
        expect(res.status).toBe(200);
        expect(res.text).toBe('fine');
      }
    }
  });

  it('honours request Cache-Control only when requestCacheControl is on', async () => {
    const c = make({ requestCacheControl: true });
    const app = appWith(c);
    let calls = 0;
    app.get('/r', cache({ ttl: '1m' }), (_req, res) => {
      calls++;
      res.send(`v${calls}`);
    });
    const { url } = await servers.listen(app);
    await request(`${url}/r`);
    const refetched = await request(`${url}/r`, { headers: { 'cache-control': 'no-cache' } });
    expect(refetched.headers['x-cache']).toBe('MISS');
    expect(refetched.text).toBe('v2');
    expect((await request(`${url}/r`)).text).toBe('v2');
    const bypass = await request(`${url}/r`, { headers: { 'cache-control': 'no-store' } });
    expect(bypass.headers['x-cache']).toBe('BYPASS');
    expect(calls).toBe(3);
  });

  it('answers HEAD from the GET entry', async () => {
    const c = make();
    const app = appWith(c);
    let calls = 0;
    app.get('/h', cache({ ttl: '1m' }), (_req, res) => {
      calls++;
      res.send('twelve bytes');
    });
    const { url } = await servers.listen(app);
    await request(`${url}/h`);
    const head = await request(`${url}/h`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['x-cache']).toBe('HIT');
    expect(head.headers['content-length']).toBe('12');
    expect(head.body.length).toBe(0);
    expect(calls).toBe(1);
  });

  it('a successful POST, PUT, PATCH or DELETE invalidates the cached GET of its URL (and Location)', async () => {
    const c = make();
    const app = appWith(c);
    let version = 1;
    app.get('/items', cache({ ttl: '1h' }), (_req, res) => res.send(`items v${version}`));
    app.get('/items/1', cache({ ttl: '1h' }), (_req, res) => res.send(`item v${version}`));
    app.post('/items', (_req, res) => {
      version++;
      res.status(201).location('/items/1').send('created');
    });
    app.delete('/items', (_req, res) => res.status(403).send('no'));
    app.put('/items/1', (_req, res) => {
      version++;
      res.send('updated');
    });
    const { url } = await servers.listen(app);
    await request(`${url}/items`);
    await request(`${url}/items/1`);
    expect((await request(`${url}/items`)).headers['x-cache']).toBe('HIT');
    const failed = await request(`${url}/items`, { method: 'DELETE' });
    expect(failed.headers['x-cache']).toBe('BYPASS');
    expect((await request(`${url}/items`)).headers['x-cache']).toBe('HIT');
    const post = await request(`${url}/items`, { method: 'POST' });
    expect(post.headers['x-cache']).toBe('BYPASS');
    const list = await request(`${url}/items`);
    expect(list.headers['x-cache']).toBe('MISS');
    expect(list.text).toBe('items v2');
    const item = await request(`${url}/items/1`);
    expect(item.headers['x-cache']).toBe('MISS');
    await request(`${url}/items/1`, { method: 'PUT' });
    expect((await request(`${url}/items/1`)).text).toBe('item v3');
    expect(c.stats().bypass).toBe(3);
  });

  it('invalidates by key, tags and prefix and reports how many keys went', async () => {
    const c = make();
    const app = appWith(c);
    app.get('/p/:id', cache({ ttl: '1h', tags: ['products'] }), (req, res) => res.send(`p${req.params.id}`));
    app.get('/u/:id', cache({ ttl: '1h', tags: ['users'] }), (req, res) => res.send(`u${req.params.id}`));
    const { url } = await servers.listen(app);
    for (const path of ['/p/1', '/p/2', '/p/3', '/u/1', '/u/2']) await request(`${url}${path}`);
    expect(c.stats().entries).toBe(5);
    expect(await c.invalidate({ key: '/p/1' })).toBe(1);
    expect(await c.invalidate({ key: '/p/1' })).toBe(0);
    expect(await c.invalidate({ tags: ['products'] })).toBe(2);
    expect(await c.invalidate({ prefix: '/u/' })).toBe(2);
    expect(c.stats().entries).toBe(0);
    await expect(c.invalidate({} as never)).rejects.toThrow(TypeError);
    await expect(c.invalidate({ prefix: '' })).rejects.toThrow(/invalidate\(\) takes/);
    await expect(c.invalidate(null as never)).rejects.toThrow(TypeError);
  });

  it('100 concurrent misses for one key make exactly one origin call', async () => {
    const c = make();
    const app = appWith(c);
    let calls = 0;
    app.get('/slow', cache({ ttl: '1m' }), (_req, res) => {
      calls++;
      setTimeout(() => res.json({ n: calls }), 100);
    });
    const { url } = await servers.listen(app);
    const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 100 });
    const results = await Promise.all(Array.from({ length: 100 }, () => request(`${url}/slow`, { agent })));
    agent.destroy();
    expect(calls).toBe(1);
    expect(results.every((r) => r.status === 200 && r.text === '{"n":1}')).toBe(true);
    const kinds = results.map((r) => r.headers['x-cache']);
    expect(kinds.filter((k) => k === 'MISS')).toHaveLength(1);
    expect(kinds.filter((k) => k === 'HIT')).toHaveLength(99);
  });

  it('does not hold back concurrent requests of a URL whose response is not storable (hit-for-pass)', async () => {
    const c = make();
    const app = appWith(c);
    let calls = 0;
    app.get('/live', (_req, res) => {
      calls++;
      setTimeout(() => res.send('live'), 20);
    });
    const { url } = await servers.listen(app);
    await request(`${url}/live`);
    const results = await Promise.all(Array.from({ length: 10 }, () => request(`${url}/live`)));
    expect(results.every((r) => r.headers['x-cache'] === 'MISS')).toBe(true);
    expect(calls).toBe(11);
  });

  it('streams a 10 MB response through uncached and byte-identical', async () => {
    const c = make();
    const app = appWith(c);
    const payload = Buffer.alloc(10 * 1024 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >> 9)) & 0xff;
    let calls = 0;
    app.get('/big', cache({ ttl: '1m' }), (_req, res) => {
      calls++;
      res.setHeader('Content-Type', 'application/octet-stream');
      const chunks: Buffer[] = [];
      for (let i = 0; i < payload.length; i += 64 * 1024) chunks.push(payload.subarray(i, i + 64 * 1024));
      Readable.from(chunks).pipe(res);
    });
    const { url } = await servers.listen(app);
    const first = await request(`${url}/big`);
    expect(first.status).toBe(200);
    expect(first.body.equals(payload)).toBe(true);
    expect(first.headers['x-cache']).toBe('MISS');
    const second = await request(`${url}/big`);
    expect(second.body.equals(payload)).toBe(true);
    expect(second.headers['x-cache']).toBe('MISS');
    expect(calls).toBe(2);
    expect(c.stats().entries).toBe(0);
  });

  it('does not store a body larger than maxEntryBytes announced by Content-Length', async () => {
    const c = make({ maxEntryBytes: 100 });
    const app = appWith(c);
    app.get('/sized', cache({ ttl: '1m' }), (_req, res) => res.send('x'.repeat(101)));
    app.get('/small', cache({ ttl: '1m' }), (_req, res) => res.send('x'.repeat(100)));
    const { url } = await servers.listen(app);
    await request(`${url}/sized`);
    await request(`${url}/small`);
    expect((await request(`${url}/sized`)).headers['x-cache']).toBe('MISS');
    expect((await request(`${url}/small`)).headers['x-cache']).toBe('HIT');
  });

  it('stores large compressible bodies compressed and serves each client an encoding it accepts', async () => {
    const c = make({ compression: 'br', compressThreshold: 1000 });
    const app = appWith(c);
    const data = { items: Array.from({ length: 200 }, (_, i) => ({ id: i, name: `item number ${i}` })) };
    const json = JSON.stringify(data);
    app.get('/list', cache({ ttl: '1m' }), (_req, res) => res.json(data));
    const { url } = await servers.listen(app);
    const miss = await request(`${url}/list`, { headers: { 'accept-encoding': 'gzip, br' } });
    expect(miss.text).toBe(json);
    const br = await request(`${url}/list`, { headers: { 'accept-encoding': 'gzip, deflate, br' } });
    expect(br.headers['x-cache']).toBe('HIT');
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toBe('Accept-Encoding');
    expect(Number(br.headers['content-length'])).toBe(br.body.length);
    expect(br.body.length).toBeLessThan(json.length / 2);
    expect(zlib.brotliDecompressSync(br.body).toString()).toBe(json);
    expect(br.headers.etag).toMatch(/^W\//);
    const plain = await request(`${url}/list`);
    expect(plain.headers['x-cache']).toBe('HIT');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.headers.vary).toBe('Accept-Encoding');
    expect(plain.headers['content-length']).toBe(String(Buffer.byteLength(json)));
    expect(plain.text).toBe(json);
    const refused = await request(`${url}/list`, { headers: { 'accept-encoding': 'br;q=0, gzip' } });
    expect(refused.headers['content-encoding']).toBeUndefined();
    expect(refused.text).toBe(json);
    const head = await request(`${url}/list`, { method: 'HEAD', headers: { 'accept-encoding': 'br' } });
    expect(head.headers['content-length']).toBe(br.headers['content-length']);
    expect(head.body.length).toBe(0);
  });

  it('gzip compression works as well, and small bodies are stored as they are', async () => {
    const c = make({ compression: 'gzip', compressThreshold: 100 });
    const app = appWith(c);
    app.get('/text', cache({ ttl: '1m' }), (_req, res) => res.type('text/plain').send('abc '.repeat(100)));
    app.get('/tiny', cache({ ttl: '1m' }), (_req, res) => res.type('text/plain').send('tiny'));
    const { url } = await servers.listen(app);
    await request(`${url}/text`);
    await request(`${url}/tiny`);
    const gz = await request(`${url}/text`, { headers: { 'accept-encoding': 'gzip' } });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(zlib.gunzipSync(gz.body).toString()).toBe('abc '.repeat(100));
    const tiny = await request(`${url}/tiny`, { headers: { 'accept-encoding': 'gzip' } });
    expect(tiny.headers['content-encoding']).toBeUndefined();
    expect(tiny.headers.vary).toBeUndefined();
  });

  it('skip(): the layer does nothing at all for skipped requests (no X-Cache)', async () => {
    const c = make({ skip: (req) => (req.url ?? '').startsWith('/dashboard') || req.url === '/metrics' });
    const app = appWith(c);
    app.get('/dashboard', cache({ ttl: '1m' }), (_req, res) => res.send('dash'));
    app.get('/metrics', (_req, res) => res.set('Cache-Control', 'public, max-age=60').send('m'));
    const { url } = await servers.listen(app);
    for (const path of ['/dashboard', '/dashboard', '/metrics', '/metrics']) {
      const res = await request(`${url}${path}`);
      expect(res.headers['x-cache']).toBeUndefined();
      expect(res.headers.age).toBeUndefined();
      expect(res.headers['server-timing']).toBeUndefined();
    }
    expect(c.stats().entries).toBe(0);
  });

  it('evicts least recently used entries past maxEntries and counts evictions', async () => {
    const c = make({ maxEntries: 2, eviction: 'lru' });
    const app = appWith(c);
    app.get('/e/:id', cache({ ttl: '1m' }), (req, res) => res.send(req.params.id));
    const { url } = await servers.listen(app);
    await request(`${url}/e/1`);
    await request(`${url}/e/2`);
    await request(`${url}/e/1`);
    await request(`${url}/e/3`);
    expect((await request(`${url}/e/1`)).headers['x-cache']).toBe('HIT');
    expect((await request(`${url}/e/2`)).headers['x-cache']).toBe('MISS');
    expect(c.stats().evictions).toBe(2);
    expect(c.stats().entries).toBe(2);
  });

  it('bounds memory by maxBytes', async () => {
    const c = make({ maxBytes: 4096, maxEntryBytes: 1000 });
    const app = appWith(c);
    app.get('/b/:id', cache({ ttl: '1m' }), (_req, res) =>
      res.type('application/octet-stream').send(Buffer.alloc(900, 1)),
    );
    const { url } = await servers.listen(app);
    for (let i = 0; i < 10; i++) await request(`${url}/b/${i}`);
    expect(c.stats().bytes).toBeLessThanOrEqual(4096);
    expect(c.stats().entries).toBeLessThan(10);
    expect(c.stats().evictions).toBeGreaterThan(0);
  });

  it('hashes long URLs into bounded keys', async () => {
    const c = make();
    const app = appWith(c);
    let calls = 0;
    app.get('/long', cache({ ttl: '1m' }), (_req, res) => {
      calls++;
      res.send('long');
    });
    const { url } = await servers.listen(app);
    const a = `/long?q=${'a'.repeat(3000)}`;
    const b = `/long?q=${'a'.repeat(2999)}b`;
    await request(`${url}${a}`);
    expect((await request(`${url}${a}`)).headers['x-cache']).toBe('HIT');
    expect((await request(`${url}${b}`)).headers['x-cache']).toBe('MISS');
    expect(calls).toBe(2);
    expect(c.stats().bytes).toBeLessThan(2 * 2000);
    expect(await c.invalidate({ prefix: '/long?q=aaa' })).toBe(2);
  });

  it('publishes hits, misses and entries on the shared registry with route labels', async () => {
    const registry = createRegistry();
    const c = make({ registry });
    const app = appWith(c);
    app.get('/users/:id', cache({ ttl: '1m' }), (req, res) => res.send(req.params.id));
    app.post('/users/:id', (_req, res) => res.send('ok'));
    const { url } = await servers.listen(app);
    await request(`${url}/users/1`);
    await request(`${url}/users/1`);
    await request(`${url}/users/2`);
    await request(`${url}/users/1`, { method: 'POST' });
    await request(`${url}/nowhere`);
    const text = await registry.metrics();
    expect(text).toContain('perfstack_cache_hits_total{route="/users/:id"} 1');
    expect(text).toContain('perfstack_cache_misses_total{route="/users/:id"} 2');
    expect(text).toContain('perfstack_cache_bypass_total{route="/users/:id"} 1');
    // Express's 404 may not be stored: a bypass, not a cacheable lookup (no miss to count).
    expect(text).toContain('perfstack_cache_bypass_total{route="unmatched"} 1');
    expect(text).not.toContain('perfstack_cache_misses_total{route="unmatched"}');
    expect(text).toContain('perfstack_cache_entries 1');
    expect(text).toMatch(/perfstack_cache_bytes \d+/);
    expect(text).toContain('perfstack_cache_evictions_total 0');
    expect(text).not.toContain('/users/1');
  });

  it('works on Express 4 too', async () => {
    const c = make();
    const app = express4();
    app.use(c);
    let calls = 0;
    app.get('/v4', cache({ ttl: '1m' }), (_req, res) => {
      calls++;
      res.json({ v: 4 });
    });
    const { url } = await servers.listen(app);
    await request(`${url}/v4`);
    const hit = await request(`${url}/v4`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.json()).toEqual({ v: 4 });
    expect(calls).toBe(1);
    expect(c.stats().routes['/v4']?.hits).toBe(1);
  });
});
