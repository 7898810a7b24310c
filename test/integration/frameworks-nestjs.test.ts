/**
 * The checks of frameworks.test.ts (Express, Koa, node:http) on NestJS, through the NestJS
 * example on each of Nest's adapters, plus what only NestJS has: decorators over the module's
 * defaults, `@NoCache()` on a cached controller, `@SkipPerfstack()`, `forRootAsync`, and
 * `PerfstackService` injected into an app service that invalidates by tag.
 */
import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { PerfstackService } from '@perfstack/nestjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/nestjs-api/src/app.js';
import { request } from '../helpers/http.js';
import { calls, clock, createDecoratedApp } from './fixtures/nestjs/app.js';

const quiet = { warn() {}, error() {} };
const stackOptions = { env: false, log: quiet, logger: { destination: { write() {} } } } as const;
const catalogOptions = { latencyMs: 2, failureRate: 0 };

const ADAPTERS = ['express', 'fastify'] as const;

async function listen(app: INestApplication): Promise<string> {
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}

describe.each(ADAPTERS)('the full stack on NestJS (%s adapter)', (adapter) => {
  let app: INestApplication;
  let url: string;
  beforeAll(async () => {
    ({ app } = await createApp({ adapter, redis: '', stackOptions, catalogOptions, logger: false }));
    url = await listen(app);
  });
  afterAll(async () => {
    await app.close();
  });

  it('answers through every layer: helmet, request id, rate-limit headers, timing, cache miss then hit', async () => {
    expect(app.getHttpAdapter().getType()).toBe(adapter);
    const miss = await request(`${url}/products`);
    expect(miss.status).toBe(200);
    expect(miss.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(miss.json()).toHaveLength(5);
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(miss.headers['x-content-type-options']).toBe('nosniff');
    expect(miss.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(miss.headers['content-security-policy']).toContain("default-src 'self'");
    expect(miss.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    expect(miss.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(miss.headers['ratelimit-policy']).toBe('"300-in-1min"; q=300; w=60');
    expect(miss.headers.ratelimit).toMatch(/^"300-in-1min"; r=\d+; t=\d+$/);
    expect(miss.headers['server-timing']).toMatch(/cache;dur=[\d.]+;desc=miss, total;dur=[\d.]+$/);

    const hit = await request(`${url}/products`, { headers: { 'x-request-id': 'client-trace-1' } });
    expect(hit.status).toBe(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.headers.age).toMatch(/^\d+$/);
    expect(hit.text).toBe(miss.text);
    expect(hit.headers['x-request-id']).toBe('client-trace-1');
    expect(hit.headers['x-content-type-options']).toBe('nosniff');
    expect(hit.headers.ratelimit).toBeUndefined();
    expect(hit.headers['server-timing']).toMatch(/^cache;dur=[\d.]+;desc=hit, total;dur=[\d.]+$/);
  });

  it('gives each allowed origin its own CORS answer, and none to others, from the cache too', async () => {
    const a = 'https://shop.example.com';
    const b = 'http://localhost:5173';
    const first = await request(`${url}/products/2`, { headers: { origin: a } });
    expect(first.status).toBe(200);
    expect(first.json()).toEqual({ id: '2', name: 'Burr grinder', price: 129 });
    expect(first.headers['access-control-allow-origin']).toBe(a);
    expect(first.headers.vary).toMatch(/Origin/);
    const second = await request(`${url}/products/2`, { headers: { origin: b } });
    expect(second.headers['access-control-allow-origin']).toBe(b);
    const againA = await request(`${url}/products/2`, { headers: { origin: a } });
    expect(againA.headers['x-cache']).toBe('HIT');
    expect(againA.headers['access-control-allow-origin']).toBe(a);
    const againB = await request(`${url}/products/2`, { headers: { origin: b } });
    expect(againB.headers['x-cache']).toBe('HIT');
    expect(againB.headers['access-control-allow-origin']).toBe(b);
    const evil = await request(`${url}/products/2`, { headers: { origin: 'https://evil.example' } });
    expect(evil.status).toBe(200);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers a CORS preflight for an allowed origin', async () => {
    const res = await request(`${url}/products`, {
      method: 'OPTIONS',
      headers: { origin: 'https://shop.example.com', 'access-control-request-method': 'POST' },
    });
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('https://shop.example.com');
    expect(res.headers['access-control-allow-methods']).toContain('POST');
  });

  it('invalidates by tag on a write (PerfstackService in the controller)', async () => {
    await request(`${url}/products`);
    expect((await request(`${url}/products`)).headers['x-cache']).toBe('HIT');
    const created = await request(`${url}/products`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Knock box', price: 25 }),
    });
    expect(created.status).toBe(201);
    expect(created.json()).toMatchObject({ name: 'Knock box', price: 25 });
    const after = await request(`${url}/products`);
    expect(after.headers['x-cache']).toBe('MISS');
    expect(after.json<Array<{ name: string }>>().map((p) => p.name)).toContain('Knock box');
  });

  it('serves /health, /metrics (by route pattern) and /dashboard to loopback clients, uncached and unlimited', async () => {
    await request(`${url}/products/3`);
    await request(`${url}/products/4`);
    const health = await request(`${url}/health`);
    expect(health.status).toBe(200);
    expect(health.headers['cache-control']).toBe('no-store');
    expect(health.headers['x-cache']).toBeUndefined();
    expect(health.headers.ratelimit).toBeUndefined();
    expect(health.json()).toMatchObject({ status: 'ok' });
    const metrics = await request(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    expect(metrics.text).toMatch(/http_request_duration_seconds_bucket\{[^}]*route="\/products\/:id"/);
    expect(metrics.text).not.toMatch(/route="\/products\/3"/);
    const page = await request(`${url}/dashboard/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['x-cache']).toBeUndefined();
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    const snapshot = await request(`${url}/dashboard/api/snapshot`);
    expect(snapshot.status).toBe(200);
    expect(snapshot.json<{ cache: { hits: number } }>().cache.hits).toBeGreaterThan(0);
    const report = await request(`${url}/dashboard/api/report`);
    expect(report.status).toBe(200);
    const body = report.json<{ score: number; grade: string }>();
    expect(body.score).toBeGreaterThanOrEqual(0);
    expect(body.score).toBeLessThanOrEqual(100);
    expect(body.grade).toMatch(/^[A-F]$/);
  });
});

describe.each(ADAPTERS)('@perfstack/nestjs decorators on NestJS (%s adapter)', (adapter) => {
  let app: INestApplication;
  let url: string;
  const before: Record<string, number> = {};
  const ran = (name: string) => (calls[name] ?? 0) - (before[name] ?? 0);
  beforeAll(async () => {
    app = await createDecoratedApp(adapter, stackOptions);
    url = await listen(app);
    Object.assign(before, calls);
  });
  afterAll(async () => {
    await app.close();
  });

  it("@CacheResponse's ttl on a method overrides the controller's and the module's", async () => {
    expect(app.getHttpAdapter().getType()).toBe(adapter);
    expect((await request(`${url}/menu`)).headers['x-cache']).toBe('MISS');
    expect((await request(`${url}/menu/short`)).headers['x-cache']).toBe('MISS');
    expect((await request(`${url}/menu`)).headers['x-cache']).toBe('HIT');
    expect((await request(`${url}/menu/short`)).headers['x-cache']).toBe('HIT');
    clock.now += 6_000;
    // 6 s later: past the method's 5 s, within the controller's minute.
    const menu = await request(`${url}/menu`);
    expect(menu.headers['x-cache']).toBe('HIT');
    expect(menu.headers.age).toBe('6');
    expect((await request(`${url}/menu/short`)).headers['x-cache']).toBe('MISS');
    expect(ran('list')).toBe(1);
    expect(ran('short')).toBe(2);
  });

  it('@NoCache() on a method of a cached controller wins, even over a cacheable response', async () => {
    const first = await request(`${url}/menu/live`);
    const second = await request(`${url}/menu/live`);
    expect(first.status).toBe(200);
    expect(second.status).toBe(200);
    expect(first.headers['cache-control']).toBe('public, max-age=60');
    expect(first.headers['x-cache']).toBeUndefined();
    expect(second.headers['x-cache']).toBeUndefined();
    expect(second.json()).toEqual({ served: first.json<{ served: number }>().served + 1 });
    // The other layers still ran.
    expect(second.headers['x-content-type-options']).toBe('nosniff');
    expect(second.headers['ratelimit-policy']).toBe('"300-in-1min"; q=300; w=60');
  });

  it('PerfstackService, injected into an app service, invalidates by tag', async () => {
    await request(`${url}/menu`);
    expect((await request(`${url}/menu`)).headers['x-cache']).toBe('HIT');
    const published = await request(`${url}/menu/publish`, { method: 'POST' });
    expect(published.status).toBe(200);
    expect(published.json<{ removed: number }>().removed).toBeGreaterThanOrEqual(1);
    const after = await request(`${url}/menu`);
    expect(after.headers['x-cache']).toBe('MISS');
    expect(ran('publish')).toBe(1);
  });

  it("@RateLimit on a route replaces the module's limit (forRootAsync's factory gave 300 a minute)", async () => {
    const loose = await request(`${url}/limits/default`);
    expect(loose.headers['ratelimit-policy']).toBe('"300-in-1min"; q=300; w=60');
    const one = await request(`${url}/limits/strict`);
    const two = await request(`${url}/limits/strict`);
    const three = await request(`${url}/limits/strict`);
    expect([one.status, two.status, three.status]).toEqual([200, 200, 429]);
    expect(one.headers['ratelimit-policy']).toBe('"2-in-1min"; q=2; w=60');
    expect(one.headers.ratelimit).toMatch(/^"2-in-1min"; r=1; t=\d+$/);
    expect(two.headers.ratelimit).toMatch(/^"2-in-1min"; r=0; t=\d+$/);
    expect(three.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(three.headers['retry-after']).toMatch(/^\d+$/);
    expect(three.json()).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
    // The module's limiter did not count the strict route's requests: one less, for `again` only.
    const again = await request(`${url}/limits/default`);
    const remaining = (res: typeof loose) => Number(/; r=(\d+);/.exec(String(res.headers.ratelimit))?.[1]);
    expect(remaining(loose)).toBeGreaterThan(250);
    expect(remaining(again)).toBe(remaining(loose) - 1);
  });

  it("@CircuitBreaker's timeout on a route replaces the module's", async () => {
    const slow = await request(`${url}/limits/slow`);
    expect(slow.status).toBe(504);
    expect(slow.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(slow.json()).toMatchObject({ status: 504, code: 'TIMEOUT' });
    const ok = await request(`${url}/limits/slow-default`);
    expect(ok.status).toBe(200);
    expect(ok.json()).toEqual({ ok: true });
  });

  it('@SkipPerfstack() bypasses every layer', async () => {
    const raw = await request(`${url}/limits/raw`);
    expect(raw.status).toBe(200);
    expect(raw.json()).toEqual({ raw: true });
    expect(raw.headers['x-request-id']).toBeUndefined();
    expect(raw.headers['x-content-type-options']).toBeUndefined();
    expect(raw.headers['ratelimit-policy']).toBeUndefined();
    expect(raw.headers['server-timing']).toBeUndefined();
    expect(raw.headers['x-cache']).toBeUndefined();
  });

  it('lists the routes with their settings, and their figures in stats()', () => {
    const service = app.get(PerfstackService);
    const byHandler = Object.fromEntries(service.routes.map((r) => [`${r.method} ${r.path}`, r]));
    expect(Object.keys(byHandler).sort()).toEqual([
      'GET /limits/default',
      'GET /limits/raw',
      'GET /limits/slow',
      'GET /limits/slow-default',
      'GET /limits/strict',
      'GET /menu',
      'GET /menu/live',
      'GET /menu/short',
      'POST /menu/publish',
    ]);
    expect(byHandler['GET /menu/short']?.cache).toEqual({ ttl: '5s', tags: ['menu'] });
    expect(byHandler['GET /menu/live']).toMatchObject({ cache: undefined, noCache: true });
    expect(byHandler['POST /menu/publish']?.cache).toBeUndefined();
    expect(byHandler['GET /limits/strict']?.rateLimit).toEqual({ limit: 2, window: '1m' });
    expect(byHandler['GET /limits/raw']?.skip).toBe(true);
    const stats = service.stats();
    expect(stats.cache.hits).toBeGreaterThanOrEqual(3);
    // The one request @RateLimit refused (route limiters report through the module's limiter).
    expect(stats.rateLimit?.blocked).toBe(1);
  });
});
