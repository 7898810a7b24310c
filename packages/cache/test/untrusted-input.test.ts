/**
 * Regression tests for header names and values the cache reads from untrusted input:
 * `Vary` naming an `Object.prototype` member, `If-None-Match: *`, and `__proto__` as a
 * header name or a route label.
 */
import http from 'node:http';
import { type ResponseCache, responseCache } from '@perfstack/cache';
import { silentLogger, withMiddleware } from '@perfstack/core';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { buildEntry, deserializeVariants, serializeVariants } from '../src/entry.js';
import { ifNoneMatchMatches, VARY_ABSENT, varyValue } from '../src/http-semantics.js';
import { CacheCounters } from '../src/stats.js';
import { matchesVariant } from '../src/store/memory.js';
import { request, serverTracker } from './helpers.js';

const servers = serverTracker();
const caches: ResponseCache[] = [];
afterEach(async () => {
  await servers.closeAll();
  await Promise.all(caches.splice(0).map((c) => c.close()));
});

function make(): ResponseCache {
  const c = responseCache({ logger: silentLogger });
  caches.push(c);
  return c;
}

/** An entry stored for a request whose varying headers had these values. */
function entryVaryingOn(names: string[], values: string[]) {
  return buildEntry({
    status: 200,
    headers: { 'content-type': 'text/plain' },
    body: Buffer.from('x'),
    identityLength: 1,
    encoding: undefined,
    storedAt: 0,
    expiresAt: 60_000,
    staleWhileRevalidate: 0,
    staleIfError: 0,
    initialAge: 0,
    shared: false,
    varyNames: names,
    varyValues: values,
    tags: [],
    route: '/t',
  });
}

const PROTOTYPE_NAMES = ['constructor', 'toString', 'valueOf', '__proto__', 'hasOwnProperty', 'isPrototypeOf'];

describe('Vary naming an Object.prototype member', () => {
  it.each(PROTOTYPE_NAMES)('varyValue() reads only own headers: %s', (name) => {
    // Absent (not an own property) is its own value, never '' (RFC 9111 §4.1; issue 14).
    expect(varyValue({}, name.toLowerCase())).toBe(VARY_ABSENT);
    expect(varyValue({}, name)).toBe(VARY_ABSENT);
    expect(varyValue({ [name]: '  v  ' }, name)).toBe('v');
  });

  it.each(PROTOTYPE_NAMES)('matchesVariant() reads only own headers: %s', (name) => {
    const entry = entryVaryingOn([name], [VARY_ABSENT]);
    expect(matchesVariant(entry, {})).toBe(true);
    expect(matchesVariant(entryVaryingOn([name], ['']), {})).toBe(false);
    expect(matchesVariant(entryVaryingOn([name], ['function Object() { [native code] }']), {})).toBe(false);
  });

  it('matchesVariant() normalises list and padded values the way they were stored', () => {
    const headers = { 'accept-language': [' en ', 'fr'], origin: '  https://a.example  ' };
    const stored = entryVaryingOn(
      ['accept-language', 'origin'],
      [varyValue(headers, 'accept-language'), varyValue(headers, 'origin')],
    );
    // Issue 14: whitespace around list commas is normalised too (combined lines ≡ one line).
    expect(stored.varyValues).toEqual(['en, fr', 'https://a.example']);
    expect(matchesVariant(stored, headers)).toBe(true);
    expect(matchesVariant(stored, { 'accept-language': 'en,fr', origin: 'https://a.example' })).toBe(true);
    expect(matchesVariant(stored, { 'accept-language': ' en , fr ', origin: 'https://a.example' })).toBe(true);
    expect(matchesVariant(stored, { 'accept-language': 'fr', origin: 'https://a.example' })).toBe(false);
  });

  it.each(['constructor', 'Constructor', 'toString', 'valueOf', '__proto__', 'hasOwnProperty'])(
    'a response with `Vary: %s` is stored and served, never a 500',
    async (name) => {
      const c = make();
      const app = express();
      app.use(c);
      let calls = 0;
      app.get('/v', (req, res) => {
        calls++;
        res.setHeader('Cache-Control', 'public, max-age=60');
        res.setHeader('Vary', name);
        const own = name.toLowerCase();
        res.json({ calls, to: Object.hasOwn(req.headers, own) ? req.headers[own] : null });
      });
      const { url } = await servers.listen(app);
      const first = await request(`${url}/v`);
      expect(first.status).toBe(200);
      expect(first.headers['x-cache']).toBe('MISS');
      expect(first.json()).toEqual({ calls: 1, to: null });
      const second = await request(`${url}/v`);
      expect(second.status).toBe(200);
      expect(second.headers['x-cache']).toBe('HIT');
      expect(second.json()).toEqual({ calls: 1, to: null });
      expect(second.headers.vary).toBe(name);
      if (name !== '__proto__') {
        // a request that does send the header is another variant (Node drops a `__proto__` request header)
        const other = await request(`${url}/v`, { headers: { [name]: 'x' } });
        expect(other.status).toBe(200);
        expect(other.headers['x-cache']).toBe('MISS');
        expect(other.json()).toEqual({ calls: 2, to: 'x' });
        expect((await request(`${url}/v`, { headers: { [name]: 'x' } })).headers['x-cache']).toBe('HIT');
      }
      expect(calls).toBe(name === '__proto__' ? 1 : 2);
    },
  );
});

describe('If-None-Match: * (RFC 9110 §13.1.2: matches any current representation)', () => {
  it('ifNoneMatchMatches(): `*` matches with or without a stored ETag; lists need the ETag', () => {
    expect(ifNoneMatchMatches('*', undefined)).toBe(true);
    expect(ifNoneMatchMatches(' * ', '"a"')).toBe(true);
    expect(ifNoneMatchMatches('"a"', undefined)).toBe(false);
    expect(ifNoneMatchMatches('W/"a", "b"', '"a"')).toBe(true);
    expect(ifNoneMatchMatches('"b"', '"a"')).toBe(false);
    expect(ifNoneMatchMatches('*, "a"', undefined)).toBe(false);
  });

  it('node:http, no ETag: a cached entry answers `*` with 304 and no body; a miss goes to the origin', async () => {
    const c = make();
    let calls = 0;
    const handler = (_req: http.IncomingMessage, res: http.ServerResponse) => {
      calls++;
      res.setHeader('Cache-Control', 'public, max-age=60');
      res.setHeader('Content-Type', 'text/plain');
      res.end('hello');
    };
    const { url } = await servers.listen(http.createServer(withMiddleware(c, handler)));
    const miss = await request(`${url}/n`, { headers: { 'if-none-match': '*' } });
    expect(miss.status).toBe(200);
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(miss.text).toBe('hello');
    const res = await request(`${url}/n`, { headers: { 'if-none-match': '*' } });
    expect(res.status).toBe(304);
    expect(res.headers['x-cache']).toBe('HIT');
    expect(res.headers.etag).toBeUndefined();
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.text).toBe('');
    const plain = await request(`${url}/n`);
    expect(plain.status).toBe(200);
    expect(plain.text).toBe('hello');
    expect(calls).toBe(1);
  });

  it('Express, with an ETag: `*` gives 304 with the ETag', async () => {
    const c = make();
    const app = express();
    app.use(c);
    app.get('/e', (_req, res) => {
      res.setHeader('Cache-Control', 'public, max-age=60');
      res.json({ ok: true });
    });
    const { url } = await servers.listen(app);
    const first = await request(`${url}/e`);
    const res = await request(`${url}/e`, { headers: { 'if-none-match': '*' } });
    expect(res.status).toBe(304);
    expect(res.headers.etag).toBe(first.headers.etag);
    expect(res.text).toBe('');
  });

  it('a stored 404 stays a 404 (preconditions only apply to a 2xx answer, RFC 9110 §13.2.1)', async () => {
    const c = make();
    const app = express();
    app.use(c);
    app.get('/gone', (_req, res) => {
      res.setHeader('Cache-Control', 'public, max-age=60');
      res.status(404).send('not here');
    });
    const { url } = await servers.listen(app);
    expect((await request(`${url}/gone`)).status).toBe(404);
    const res = await request(`${url}/gone`, { headers: { 'if-none-match': '*' } });
    expect(res.status).toBe(404);
    expect(res.headers['x-cache']).toBe('HIT');
    expect(res.text).toBe('not here');
  });
});

describe('`__proto__` as a key', () => {
  it('a response header named __proto__ is not stored (it would set the prototype of the stored headers)', async () => {
    const c = make();
    const app = express();
    app.use(c);
    app.get('/p', (_req, res) => {
      res.setHeader('Cache-Control', 'public, max-age=60');
      res.setHeader('__proto__', ['a', 'b']);
      res.send('p');
    });
    const { url } = await servers.listen(app);
    expect((await request(`${url}/p`)).status).toBe(200);
    const hit = await request(`${url}/p`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.text).toBe('p');
    expect(Object.hasOwn(hit.headers, '__proto__')).toBe(false);
  });

  it('an L2 record with a __proto__ header is read without it', () => {
    const text = serializeVariants([entryVaryingOn([], [])]).replace('"h":{', '"h":{"__proto__":["x"],');
    const [entry] = deserializeVariants(text);
    expect(Object.getPrototypeOf(entry?.headers)).toBe(Object.prototype);
    expect(Object.keys(entry?.headers ?? {})).toEqual(['content-type', 'content-length']);
  });

  it('stats() keeps a route labelled __proto__ as an own property', () => {
    const counters = new CacheCounters(undefined, () => ({ entries: 0, bytes: 0 }));
    counters.route('__proto__').count('hit');
    counters.route('/a').count('miss');
    const { routes } = counters.snapshot(0, 0);
    expect(Object.getPrototypeOf(routes)).toBe(Object.prototype);
    expect(Object.keys(routes)).toEqual(['__proto__', '/a']);
    expect(Object.getOwnPropertyDescriptor(routes, '__proto__')?.value).toMatchObject({ hits: 1, misses: 0 });
  });
});
