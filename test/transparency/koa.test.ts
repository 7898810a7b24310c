/**
 * Transparency on Koa: what real Koa apps do — `ctx.body` as a stream, a buffer, a string,
 * JSON; `ctx.throw` and Koa's own error answers; koa-compose error flow through an error
 * middleware; @koa/router with prefixes and nested routers; redirects, attachments,
 * conditional GETs with `ctx.fresh`, HEAD — answered identically with the preset in front
 * (`perfstack/koa`, at its defaults) and without it. See `harness.ts`.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import Router from '@koa/router';
import Koa from 'koa';
import { performanceStack } from 'perfstack/koa';
import { afterEach, describe, expect, it } from 'vitest';
import { FIXTURES } from './express-app.js';
import { compareApps, type Exchange, type RunningApp, serve } from './harness.js';

const running: RunningApp[] = [];
afterEach(async () => {
  for (const app of running.splice(0)) await app.close();
});

class AppError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly expose = true,
  ) {
    super(message);
  }
}

function buildKoaApp(front?: (app: Koa) => void): Koa {
  const app = new Koa();
  app.silent = true;
  app.proxy = true;
  front?.(app);

  // an app's error middleware: koa-compose hands it what downstream throws
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const e = error as AppError;
      if (ctx.path.startsWith('/handled/')) {
        ctx.status = e.status ?? 500;
        ctx.body = { error: e.message, handled: true };
        return;
      }
      throw error; // Koa's own error answer
    }
  });

  const router = new Router();
  router.get('/stream/file', (ctx) => {
    ctx.type = 'application/octet-stream';
    ctx.body = createReadStream(join(FIXTURES, 'report.bin'));
  });
  router.get('/stream/generated', (ctx) => {
    ctx.type = 'text/plain';
    ctx.body = Readable.from(
      (function* lines() {
        for (let i = 0; i < 5000; i++) yield `line ${i}\n`;
      })(),
    );
  });
  router.get('/buffer', (ctx) => {
    ctx.body = Buffer.from([0, 1, 2, 3, 250, 251, 252]);
  });
  router.get('/string', (ctx) => {
    ctx.body = 'just a string';
  });
  router.get('/html', (ctx) => {
    ctx.body = '<!doctype html><p>html</p>';
  });
  router.get('/json', (ctx) => {
    ctx.body = { name: 'widget', list: [1, 2, 3] };
  });
  router.get('/empty', (ctx) => {
    ctx.body = null;
  });
  router.get('/status/201', (ctx) => {
    ctx.status = 201;
    ctx.body = { created: true };
  });
  router.get('/status/500', (ctx) => {
    ctx.status = 500;
    ctx.body = 'app chose 500';
  });
  router.get('/throw/404', (ctx) => {
    ctx.throw(404);
  });
  router.get('/throw/400', (ctx) => {
    ctx.throw(400, 'bad input', { expose: true });
  });
  router.get('/throw/500', () => {
    throw new Error('hidden internals');
  });
  router.get('/handled/conflict', () => {
    throw new AppError(409, 'already exists');
  });
  router.get('/handled/async', async () => {
    await new Promise((resolve) => setImmediate(resolve));
    throw new AppError(503, 'try later');
  });
  router.get('/redirect', (ctx) => {
    ctx.redirect('/json');
  });
  router.get('/redirect/301', (ctx) => {
    ctx.status = 301;
    ctx.redirect('https://example.org/moved');
  });
  router.get('/attachment', (ctx) => {
    ctx.attachment('report final.txt');
    ctx.body = 'attached';
  });
  router.get('/fresh', (ctx) => {
    ctx.set('ETag', '"v7"');
    ctx.set('Cache-Control', 'no-cache');
    ctx.status = 200;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.body = { version: 7 };
  });
  router.get('/whoami', (ctx) => {
    ctx.body = { ip: ctx.ip, ips: ctx.ips, host: ctx.host, hostname: ctx.hostname, protocol: ctx.protocol };
  });
  router.get('/cookies', (ctx) => {
    ctx.cookies.set('session', 'k0a', { httpOnly: true, path: '/' });
    ctx.body = { cookie: ctx.get('Cookie') };
  });
  router.post('/echo', async (ctx) => {
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.req) chunks.push(chunk as Buffer);
    ctx.status = 201;
    ctx.body = { length: Buffer.concat(chunks).length, type: ctx.get('Content-Type') };
  });
  router.all('/method', (ctx) => {
    ctx.body = { method: ctx.method };
  });
  router.get('/cached', (ctx) => {
    ctx.set('Cache-Control', 'public, max-age=60');
    ctx.body = { cacheable: true };
  });

  const nested = new Router({ prefix: '/items' });
  nested.get('/:id', (ctx) => {
    ctx.body = { id: ctx.params.id, route: ctx._matchedRoute };
  });
  const api = new Router({ prefix: '/api/v1' });
  api.use(nested.routes(), nested.allowedMethods());
  router.use(api.routes(), api.allowedMethods());

  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
}

const rows: Exchange[] = [
  { name: 'stream from a file', path: '/stream/file', expectStatus: 200 },
  { name: 'stream HEAD', method: 'HEAD', path: '/stream/file', expectStatus: 200 },
  { name: 'generated stream', path: '/stream/generated', expectStatus: 200 },
  { name: 'buffer', path: '/buffer', expectStatus: 200 },
  { name: 'string', path: '/string', expectStatus: 200 },
  { name: 'html', path: '/html', expectStatus: 200 },
  { name: 'json', path: '/json', expectStatus: 200 },
  { name: 'json HEAD', method: 'HEAD', path: '/json', expectStatus: 200 },
  { name: 'null body', path: '/empty', expectStatus: 204 },
  { name: '201', path: '/status/201', expectStatus: 201 },
  { name: 'app 500', path: '/status/500', expectStatus: 500 },
  { name: 'ctx.throw(404)', path: '/throw/404', expectStatus: 404 },
  { name: 'ctx.throw(400, msg)', path: '/throw/400', expectStatus: 400 },
  { name: 'thrown error → Koa 500', path: '/throw/500', expectStatus: 500 },
  { name: 'compose error flow: handled', path: '/handled/conflict', expectStatus: 409 },
  { name: 'compose error flow: async', path: '/handled/async', expectStatus: 503 },
  { name: 'redirect', path: '/redirect', expectStatus: 302 },
  { name: 'redirect 301 absolute', path: '/redirect/301', expectStatus: 301 },
  { name: 'attachment', path: '/attachment', expectStatus: 200 },
  { name: 'fresh: full', path: '/fresh', expectStatus: 200 },
  { name: 'fresh: 304', path: '/fresh', headers: { 'if-none-match': '"v7"' }, expectStatus: 304 },
  { name: 'fresh: other etag', path: '/fresh', headers: { 'if-none-match': '"v6"' }, expectStatus: 200 },
  {
    name: 'proxy headers',
    path: '/whoami',
    headers: { 'x-forwarded-for': '198.51.100.4', 'x-forwarded-host': 'koa.example', 'x-forwarded-proto': 'https' },
    expectStatus: 200,
  },
  { name: 'cookies', path: '/cookies', headers: { cookie: 'a=1; b=2' }, expectStatus: 200 },
  {
    name: 'request body',
    method: 'POST',
    path: '/echo',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ pad: 'x'.repeat(5000) }),
    expectStatus: 201,
  },
  { name: 'PUT', method: 'PUT', path: '/method', body: 'x', expectStatus: 200 },
  { name: 'DELETE', method: 'DELETE', path: '/method', expectStatus: 200 },
  { name: 'nested router', path: '/api/v1/items/42', expectStatus: 200 },
  { name: 'allowedMethods 405', method: 'POST', path: '/json', expectStatus: 405 },
  { name: 'allowedMethods OPTIONS', method: 'OPTIONS', path: '/json', expectStatus: 200 },
  { name: 'unknown route', path: '/nowhere', expectStatus: 404 },
  { name: 'cacheable once', path: '/cached', expectStatus: 200 },
  { name: 'cacheable twice', path: '/cached', expectStatus: 200 },
  {
    name: 'cacheable range',
    path: '/cached',
    headers: { range: 'bytes=0-3' },
    expectStatus: 200,
    knownDeviation: 'the cache answers a range from a fresh entry (206) where Koa ignores Range (200)',
  },
];

describe('Koa', () => {
  it(`answers every exchange (${rows.length}) exactly as without the preset`, async () => {
    const bare = await serve(buildKoaApp().callback());
    running.push(bare);
    const stack = performanceStack({ env: false, logger: { destination: { write() {} } } });
    const stacked = await serve(buildKoaApp((app) => app.use(stack)).callback(), () => stack.close());
    running.push(stacked);
    expect(await compareApps(bare, stacked, rows)).toEqual([]);
  });
});
