/**
 * Cache-poisoning attempts (issue 14, "Key safety"): an attacker sends a request whose
 * unusual part the app reflects in a cacheable response; a victim then sends the ordinary
 * request and must get the ordinary response — on one instance, and across two instances
 * sharing a real Redis (attacker on A, victim on B, both behind one public Host).
 *
 * Every attack runs against an app that *does* reflect the header (so the test would fail
 * if the cache keyed it wrongly): the attacker's own answer shows the reflection.
 */
import { cache, type ResponseCache, responseCache } from '@perfstack/cache';
import { createSharedRedis, type SharedRedis, silentLogger } from '@perfstack/core';
import express from 'express';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanPrefix, redisUrl, uniquePrefix } from '../../../test/helpers/redis.js';
import { request, serverTracker, waitFor } from './helpers.js';

const HOST = 'shop.example';
const servers = serverTracker();
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  await servers.closeAll();
  for (const close of closers.splice(0).reverse()) await close();
});

/** The app under attack: every route is cacheable and reflects one part of the request. */
function app(c: ResponseCache, trustProxy: boolean) {
  const a = express();
  if (trustProxy) a.set('trust proxy', true);
  // A rewrite middleware as some frameworks and proxies have (IIS, Symfony): X-Original-URL wins.
  a.use((req, _res, next) => {
    const original = req.headers['x-original-url'];
    if (typeof original === 'string') req.url = original;
    next();
  });
  // A method override that also works on GET (as some apps configure it).
  a.use((req, _res, next) => {
    const override = req.headers['x-http-method-override'];
    if (typeof override === 'string') req.method = override.toUpperCase();
    next();
  });
  a.use(c);
  a.use(express.text({ type: '*/*' }));
  const cacheable = (res: express.Response) => res.setHeader('Cache-Control', 'public, max-age=600');
  a.get('/redirect', (req, res) => {
    cacheable(res);
    res.redirect(301, `${req.protocol}://${req.host}/new`);
  });
  a.get('/canonical', (req, res) => {
    cacheable(res);
    res.send(`<link rel="canonical" href="${req.protocol}://${req.hostname}/canonical">`);
  });
  a.get('/raw-host', (req, res) => {
    cacheable(res);
    res.send(`host=${req.headers.host}`);
  });
  a.get('/admin', (_req, res) => {
    cacheable(res);
    res.send('ADMIN PANEL');
  });
  a.get('/home', (_req, res) => {
    cacheable(res);
    res.send('home');
  });
  a.delete('/home', (_req, res) => {
    res.setHeader('Cache-Control', 'public, max-age=600');
    res.send('DELETED');
  });
  a.get('/a', (req, res) => {
    cacheable(res);
    res.send(`you asked for ${req.originalUrl}`);
  });
  a.get('/q', (req, res) => {
    cacheable(res);
    res.send(`x=${JSON.stringify(req.query.x)}`);
  });
  a.get('/search', (req, res) => {
    cacheable(res);
    res.send(`results for ${typeof req.body === 'string' && req.body !== '' ? req.body : 'nothing'}`);
  });
  a.get('/routed', cache({ ttl: '5m' }), (req, res) => {
    res.send(`routed on ${req.hostname}`);
  });
  return a;
}

interface Pair {
  attacker: string;
  victim: string;
  /** Waits until whatever A stored is visible to B (Redis written, pub/sub delivered). */
  settle(): Promise<void>;
}

type Setup = (trustProxy: boolean) => Promise<Pair>;

const oneInstance: Setup = async (trustProxy) => {
  const c = responseCache({ logger: silentLogger });
  closers.push(() => c.close());
  const s = await servers.listen(app(c, trustProxy));
  return { attacker: s.url, victim: s.url, settle: async () => {} };
};

let url: string;
const prefixes: string[] = [];
const twoInstances: Setup = async (trustProxy) => {
  const prefix = uniquePrefix('poison');
  prefixes.push(prefix);
  const connect = async (): Promise<SharedRedis> => {
    const r = createSharedRedis({ url, keyPrefix: prefix, logger: silentLogger, commandTimeout: 300 });
    closers.push(() => r.close());
    await waitFor(() => r.isUp, 5000);
    return r;
  };
  const [ra, rb] = [await connect(), await connect()];
  const a = responseCache({ redis: ra, logger: silentLogger });
  const b = responseCache({ redis: rb, logger: silentLogger });
  closers.push(
    () => a.close(),
    () => b.close(),
  );
  const sa = await servers.listen(app(a, trustProxy));
  const sb = await servers.listen(app(b, trustProxy));
  return {
    attacker: sa.url,
    victim: sb.url,
    async settle() {
      // Whatever A stored is in Redis and announced; give B's subscriber the message.
      await waitFor(async () => (await ra.client.keys(`${prefix}cache::*`)).length > 0, 500).catch(() => {});
      await new Promise((r) => setTimeout(r, 100));
    },
  };
};

const get = (base: string, path: string, headers: Record<string, string> = {}, extra: { body?: string } = {}) =>
  request(`${base}${path}`, { headers: { host: HOST, ...headers }, ...extra });

beforeAll(async () => {
  url = await redisUrl();
});
afterAll(async () => {
  for (const prefix of prefixes) await cleanPrefix(url, prefix);
});

describe.each([
  ['one instance', oneInstance],
  ['two instances sharing Redis', twoInstances],
] as const)('cache poisoning: %s', (_label, setup) => {
  it('Host: a reflected absolute redirect is never served to another host', async () => {
    const p = await setup(false);
    const attack = await get(p.attacker, '/redirect', { host: 'evil.example' });
    expect(attack.status).toBe(301);
    expect(attack.headers.location).toBe('http://evil.example/new');
    await p.settle();
    const victim = await get(p.victim, '/redirect');
    expect(victim.status).toBe(301);
    expect(victim.headers['x-cache']).toBe('MISS');
    expect(victim.headers.location).toBe(`http://${HOST}/new`);
    const again = await get(p.victim, '/redirect');
    expect(again.headers['x-cache']).toBe('HIT');
    expect(again.headers.location).toBe(`http://${HOST}/new`);
    // The attacker still only poisons its own host.
    expect((await get(p.attacker, '/redirect', { host: 'evil.example' })).headers.location).toBe(
      'http://evil.example/new',
    );
  });

  it('Host: a raw Host reflection is keyed by Host too; an invalid Host is not cached at all', async () => {
    const p = await setup(false);
    expect((await get(p.attacker, '/raw-host', { host: 'EVIL.example' })).text).toBe('host=EVIL.example');
    await p.settle();
    const victim = await get(p.victim, '/raw-host');
    expect(victim.text).toBe(`host=${HOST}`);
    expect(victim.headers['x-cache']).toBe('MISS');
    for (const bad of ['evil.example/../x', 'a b', 'evil.example:80:80', 'user@evil.example']) {
      const res = await get(p.attacker, '/raw-host', { host: bad });
      expect(res.headers['x-cache']).toBe('BYPASS');
      expect(res.text).toBe(`host=${bad}`);
    }
    expect((await get(p.victim, '/raw-host')).text).toBe(`host=${HOST}`);
  });

  it('X-Forwarded-Host, app not trusting proxies: ignored by the framework and by the key', async () => {
    const p = await setup(false);
    const attack = await get(p.attacker, '/redirect', { 'x-forwarded-host': 'evil.example' });
    expect(attack.headers.location).toBe(`http://${HOST}/new`);
    await p.settle();
    const victim = await get(p.victim, '/redirect');
    expect(victim.headers.location).toBe(`http://${HOST}/new`);
  });

  it('X-Forwarded-Host, app trusting proxies: keyed, so the forged host stays with its sender', async () => {
    const p = await setup(true);
    const attack = await get(p.attacker, '/canonical', { 'x-forwarded-host': 'evil.example' });
    expect(attack.text).toBe('<link rel="canonical" href="http://evil.example/canonical">');
    await p.settle();
    const victim = await get(p.victim, '/canonical', { 'x-forwarded-host': HOST });
    expect(victim.headers['x-cache']).toBe('MISS');
    expect(victim.text).toBe(`<link rel="canonical" href="http://${HOST}/canonical">`);
    const plain = await get(p.victim, '/canonical');
    expect(plain.text).toBe(`<link rel="canonical" href="http://${HOST}/canonical">`);
  });

  it('X-Forwarded-Proto, app trusting proxies: https and http are two entries', async () => {
    const p = await setup(true);
    const attack = await get(p.attacker, '/redirect', { 'x-forwarded-proto': 'https' });
    expect(attack.headers.location).toBe(`https://${HOST}/new`);
    await p.settle();
    const victim = await get(p.victim, '/redirect');
    expect(victim.headers['x-cache']).toBe('MISS');
    expect(victim.headers.location).toBe(`http://${HOST}/new`);
    // A scheme that is neither http nor https is not cached.
    expect((await get(p.attacker, '/redirect', { 'x-forwarded-proto': 'javascript' })).headers['x-cache']).toBe(
      'BYPASS',
    );
  });

  it('X-Forwarded-Proto, app not trusting proxies: ignored by the framework and the key', async () => {
    const p = await setup(false);
    const attack = await get(p.attacker, '/redirect', { 'x-forwarded-proto': 'https' });
    expect(attack.headers.location).toBe(`http://${HOST}/new`);
    await p.settle();
    expect((await get(p.victim, '/redirect')).headers.location).toBe(`http://${HOST}/new`);
  });

  it('X-Original-URL: a rewritten request is not cached, so /home never serves the admin page', async () => {
    const p = await setup(false);
    const attack = await get(p.attacker, '/home', { 'x-original-url': '/admin' });
    expect(attack.text).toBe('ADMIN PANEL');
    expect(attack.headers['x-cache']).toBe('BYPASS');
    await p.settle();
    const victim = await get(p.victim, '/home');
    expect(victim.text).toBe('home');
    expect((await get(p.attacker, '/home', { 'x-rewrite-url': '/admin' })).headers['x-cache']).toBe('BYPASS');
  });

  it('X-HTTP-Method-Override: a GET turned into another method is not cached', async () => {
    const p = await setup(false);
    const attack = await get(p.attacker, '/home', { 'x-http-method-override': 'DELETE' });
    expect(attack.text).toBe('DELETED');
    expect(attack.headers['x-cache']).toBe('BYPASS');
    await p.settle();
    const victim = await get(p.victim, '/home');
    expect(victim.text).toBe('home');
    expect(victim.headers['x-cache']).toBe('MISS');
  });

  it('path normalisation: /a, /a/, /%61 and /A are four keys, each served its own response', async () => {
    const p = await setup(false);
    const paths = ['/a', '/a/', '/%61', '/A'];
    for (const path of paths) {
      const first = await get(p.attacker, path);
      expect([path, first.status, first.headers['x-cache']]).toEqual([path, path === '/%61' ? 404 : 200, 'MISS']);
    }
    await p.settle();
    for (const path of paths.filter((x) => x !== '/%61')) {
      const res = await get(p.victim, path);
      expect([path, res.text]).toEqual([path, `you asked for ${path}`]);
    }
  });

  it('duplicate query keys: ?x=1&x=2, ?x=1 and ?x=2 are three keys', async () => {
    const p = await setup(false);
    expect((await get(p.attacker, '/q?x=1&x=2')).text).toBe('x=["1","2"]');
    await p.settle();
    expect((await get(p.victim, '/q?x=1')).text).toBe('x="1"');
    expect((await get(p.victim, '/q?x=2')).text).toBe('x="2"');
    expect((await get(p.victim, '/q?x=1&x=2')).text).toBe('x=["1","2"]');
  });

  it('a fat GET (a GET with a body) is not cached', async () => {
    const p = await setup(false);
    const body = '<script>evil()</script>';
    const attack = await get(
      p.attacker,
      '/search',
      { 'content-type': 'text/plain', 'content-length': String(body.length) },
      { body },
    );
    expect(attack.text).toBe('results for <script>evil()</script>');
    expect(attack.headers['x-cache']).toBe('BYPASS');
    await p.settle();
    const victim = await get(p.victim, '/search');
    expect(victim.text).toBe('results for nothing');
    expect(victim.headers['x-cache']).toBe('MISS');
  });

  it('a cache() route keys by host as well', async () => {
    const p = await setup(false);
    expect((await get(p.attacker, '/routed', { host: 'evil.example' })).text).toBe('routed on evil.example');
    await p.settle();
    expect((await get(p.victim, '/routed')).text).toBe(`routed on ${HOST}`);
  });
});

describe('cache poisoning on Koa: the key follows ctx.host (app.proxy)', () => {
  async function koaApp(proxy: boolean) {
    const { default: Koa } = await import('koa');
    const { toKoa } = await import('@perfstack/core');
    const c = responseCache({ logger: silentLogger });
    closers.push(() => c.close());
    const app = new Koa();
    app.proxy = proxy;
    app.use(toKoa(c));
    app.use((ctx) => {
      ctx.set('Cache-Control', 'public, max-age=600');
      ctx.body = `canonical ${ctx.protocol}://${ctx.host}/`;
    });
    return servers.listen(app.callback());
  }

  it('app.proxy = false: X-Forwarded-Host is ignored by Koa and by the key', async () => {
    const s = await koaApp(false);
    expect((await get(s.url, '/', { 'x-forwarded-host': 'evil.example' })).text).toBe(`canonical http://${HOST}/`);
    const victim = await get(s.url, '/');
    expect(victim.headers['x-cache']).toBe('HIT');
    expect(victim.text).toBe(`canonical http://${HOST}/`);
  });

  it('app.proxy = true: X-Forwarded-Host and -Proto are keyed, the forged ones stay with their sender', async () => {
    const s = await koaApp(true);
    const attack = await get(s.url, '/', { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' });
    expect(attack.text).toBe('canonical https://evil.example/');
    const victim = await get(s.url, '/');
    expect(victim.headers['x-cache']).toBe('MISS');
    expect(victim.text).toBe(`canonical http://${HOST}/`);
  });
});
