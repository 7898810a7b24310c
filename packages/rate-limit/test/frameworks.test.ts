/**
 * The same limiter under Koa (toKoa) and node:http (withMiddleware); header drafts; skip;
 * per-route limiters; custom handler; metrics on the shared registry.
 */

import Router from '@koa/router';
import { createRegistry, type RequestListener, toKoa, withMiddleware } from '@perfstack/core';
import { rateLimit } from '@perfstack/rate-limit';
import express from 'express';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request } from '../../../test/helpers/http.js';
import { FakeClock } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The app behind the limiter on plain node:http. */
const sayOk: RequestListener = (_req, res) => {
  res.end('ok');
};

describe('frameworks', () => {
  it('works under Koa via toKoa (client address from the socket)', async () => {
    const limiter = rateLimit({ registry: createRegistry(), limit: 2, window: '1m' });
    const app = new Koa();
    const router = new Router();
    router.get('/hello', (ctx) => {
      ctx.body = `hi ${(ctx.req as unknown as { rateLimit: { key: string } }).rateLimit.key}`;
    });
    app.use(toKoa(limiter));
    app.use(router.routes());
    const server = await listen(app.callback());
    cleanups.push(
      () => limiter.close(),
      () => server.close(),
    );
    const first = await request(`${server.url}/hello`);
    expect(first.status).toBe(200);
    expect(first.text).toBe('hi 127.0.0.1');
    expect(first.headers.ratelimit).toBe('"2-in-1min"; r=1; t=60');
    expect((await request(`${server.url}/hello`)).status).toBe(200);
    const refused = await request(`${server.url}/hello`);
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe('60');
    expect(refused.json()).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
  });

  it('works on plain node:http via withMiddleware; HEAD 429 has no body', async () => {
    const limiter = rateLimit({ registry: createRegistry(), limit: 1, window: '30s', algorithm: 'token-bucket' });
    const server = await listen(withMiddleware(limiter, sayOk));
    cleanups.push(
      () => limiter.close(),
      () => server.close(),
    );
    expect((await request(server.url)).text).toBe('ok');
    const head = await request(server.url, { method: 'HEAD' });
    expect(head.status).toBe(429);
    expect(head.body.length).toBe(0);
    expect(head.headers['retry-after']).toBe('30');
  });

  it.each([
    [
      'draft-7',
      { 'ratelimit-policy': '3;w=60', ratelimit: 'limit=3, remaining=2, reset=60' },
      ['ratelimit-limit', 'x-ratelimit-limit'],
    ],
    [
      'draft-6',
      { 'ratelimit-policy': '3;w=60', 'ratelimit-limit': '3', 'ratelimit-remaining': '2', 'ratelimit-reset': '60' },
      ['ratelimit', 'x-ratelimit-limit'],
    ],
    [false, {}, ['ratelimit', 'ratelimit-policy', 'ratelimit-limit']],
  ] as const)('headers: %s', async (headers, expected, absent) => {
    const clock = new FakeClock(5_000_000);
    const limiter = rateLimit({ registry: createRegistry(), limit: 3, headers, clock: clock.read });
    const server = await listen(withMiddleware(limiter, sayOk));
    cleanups.push(
      () => limiter.close(),
      () => server.close(),
    );
    const res = await request(server.url);
    for (const [name, value] of Object.entries(expected)) expect(res.headers[name]).toBe(value);
    for (const name of absent) expect(res.headers[name]).toBeUndefined();
  });

  it('headers already sent by an earlier middleware: no headers, no error, still counted', async () => {
    const limiter = rateLimit({ registry: createRegistry(), limit: 5, legacyHeaders: true });
    const seen: unknown[] = [];
    const app = express();
    app.use((_req, res, next) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('early');
      next();
    });
    app.use(limiter);
    app.use((req, _res, next) => {
      seen.push((req as unknown as { rateLimit: { remaining: number } }).rateLimit.remaining);
      next();
    });
    app.use((error: unknown, _req: express.Request, _res: express.Response, _next: express.NextFunction) => {
      seen.push(error);
    });
    const server = await listen(app as never);
    cleanups.push(
      () => limiter.close(),
      () => server.close(),
    );
    const res = await request(server.url);
    expect(res.status).toBe(200);
    expect(res.text).toBe('early');
    expect(res.headers.ratelimit).toBeUndefined();
    expect(res.headers['ratelimit-policy']).toBeUndefined();
    expect(res.headers['x-ratelimit-limit']).toBeUndefined();
    expect(seen).toEqual([4]);
    expect(limiter.stats().allowed).toBe(1);
  });

  it('legacyHeaders adds X-RateLimit-* (reset in epoch seconds)', async () => {
    const clock = new FakeClock(5_000_000);
    const limiter = rateLimit({ registry: createRegistry(), limit: 3, legacyHeaders: true, clock: clock.read });
    const server = await listen(withMiddleware(limiter, sayOk));
    cleanups.push(
      () => limiter.close(),
      () => server.close(),
    );
    const res = await request(server.url);
    expect(res.headers['x-ratelimit-limit']).toBe('3');
    expect(res.headers['x-ratelimit-remaining']).toBe('2');
    expect(res.headers['x-ratelimit-reset']).toBe('5060');
  });

  it('skip lets requests through unlimited and without headers (sync and async)', async () => {
    const limiter = rateLimit({
      registry: createRegistry(),
      limit: 1,
      skip: (req) => (req.url === '/health' ? true : req.url === '/metrics' ? Promise.resolve(true) : false),
    });
    const server = await listen(withMiddleware(limiter, sayOk));
    cleanups.push(
      () => limiter.close(),
      () => server.close(),
    );
    for (let i = 0; i < 3; i++) {
      const health = await request(`${server.url}/health`);
      expect(health.status).toBe(200);
      expect(health.headers.ratelimit).toBeUndefined();
      expect((await request(`${server.url}/metrics`)).status).toBe(200);
    }
    expect((await request(`${server.url}/`)).status).toBe(200);
    expect((await request(`${server.url}/`)).status).toBe(429);
    expect(limiter.stats()).toMatchObject({ skipped: 6, allowed: 1, blocked: 1 });
  });

  it('route limiters: limiter.route() and rateLimit.route() add a stricter per-route limit', async () => {
    const registry = createRegistry();
    const limiter = rateLimit({ registry, limit: 100 });
    const login = limiter.route({ limit: 2, window: '15m', name: 'login' });
    const standalone = rateLimit.route({ registry, limit: 1, name: 'reset' });
    const app = express();
    app.use(limiter);
    app.post('/login', login, (_req, res) => {
      res.send('in');
    });
    app.post('/reset', standalone, (_req, res) => {
      res.send('sent');
    });
    app.get('/', (_req, res) => {
      res.send('home');
    });
    const server = await listen(app as never);
    cleanups.push(
      () => limiter.close(),
      () => standalone.close(),
      () => server.close(),
    );
    expect((await request(`${server.url}/login`, { method: 'POST' })).status).toBe(200);
    expect((await request(`${server.url}/login`, { method: 'POST' })).status).toBe(200);
    const refused = await request(`${server.url}/login`, { method: 'POST' });
    expect(refused.status).toBe(429);
    expect(refused.json<{ limit: string }>().limit).toBe('login');
    expect((await request(`${server.url}/`)).status).toBe(200);
    expect((await request(`${server.url}/reset`, { method: 'POST' })).status).toBe(200);
    expect((await request(`${server.url}/reset`, { method: 'POST' })).status).toBe(429);
    const stats = limiter.stats();
    expect(stats.limits.map((l) => [l.name, l.allowed, l.blocked])).toEqual([
      ['100-in-1min', 6, 0],
      ['login', 2, 1],
    ]);
    const metrics = await registry.metrics();
    expect(metrics).toContain('perfstack_rate_limit_requests_total{limit="login",outcome="blocked"} 1');
    expect(metrics).toContain('perfstack_rate_limit_requests_total{limit="reset",outcome="blocked"} 1');
    expect(metrics).toContain('perfstack_rate_limit_requests_total{limit="100-in-1min",outcome="allowed"} 6');
    expect(metrics).toContain('perfstack_rate_limit_store_errors_total 0');
  });

  it('a custom handler answers refused requests with the limit info', async () => {
    const limiter = rateLimit({
      registry: createRegistry(),
      limit: 1,
      handler: (_req, res, _next, info) => {
        res.statusCode = 429;
        res.end(`slow down ${info.name} ${info.remaining} ${info.retryAfter}`);
      },
    });
    const server = await listen(withMiddleware(limiter, sayOk));
    cleanups.push(
      () => limiter.close(),
      () => server.close(),
    );
    await request(server.url);
    const res = await request(server.url);
    expect(res.status).toBe(429);
    expect(res.text).toBe('slow down 1-in-1min 0 60');
  });

  it('errors from keyGenerator go to next(err) (a 500 problem), never crash the server', async () => {
    const limiter = rateLimit({
      registry: createRegistry(),
      keyGenerator: () => Promise.reject(new Error('boom')),
    });
    const server = await listen(withMiddleware(limiter, sayOk, { onError: () => {} }));
    cleanups.push(
      () => limiter.close(),
      () => server.close(),
    );
    const res = await request(server.url);
    expect(res.status).toBe(500);
    expect(res.json()).toMatchObject({ code: 'INTERNAL_ERROR' });
  });
});
