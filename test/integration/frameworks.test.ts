/**
 * The same stack, proven on Express, Koa and node:http through the three examples: helmet's
 * headers, CORS per origin (with the cache keeping one entry per origin), request ids, cache
 * hits and invalidation, and the stack's own endpoints.
 */
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp as createExpressApp } from '../../examples/express-api/app.js';
import { createApp as createKoaApp } from '../../examples/koa-api/app.js';
import { createApp as createNodeApp } from '../../examples/node-http/app.js';
import { listen, request, type TestServer } from '../helpers/http.js';

const quiet = { warn() {}, error() {} };
const stackOptions = { env: false, log: quiet, logger: { destination: { write() {} } } };
const catalogOptions = { latencyMs: 2, failureRate: 0 };

type Built = { server: TestServer; close(): Promise<void> };

const frameworks: Record<string, () => Promise<Built>> = {
  Express: async () => {
    const { app, stack } = createExpressApp({ redis: '', stackOptions, catalogOptions });
    const server = await listen(app);
    return {
      server,
      close: async () => {
        await server.close();
        await stack.close();
      },
    };
  },
  Koa: async () => {
    const { app, stack } = createKoaApp({ redis: '', stackOptions, catalogOptions });
    const server = await listen(createServer(app.callback()));
    return {
      server,
      close: async () => {
        await server.close();
        await stack.close();
      },
    };
  },
  'node:http': async () => {
    const { listener, stack } = createNodeApp({ redis: '', stackOptions, catalogOptions });
    const server = await listen(listener);
    return {
      server,
      close: async () => {
        await server.close();
        await stack.close();
      },
    };
  },
};

describe.each(Object.keys(frameworks))('the full stack on %s', (name) => {
  let built: Built;
  let url: string;
  beforeAll(async () => {
    built = await (frameworks[name] as () => Promise<Built>)();
    url = built.server.url;
  });
  afterAll(async () => {
    await built.close();
  });

  it('answers through every layer: helmet, request id, rate-limit headers, timing, cache miss then hit', async () => {
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
    expect(miss.headers['server-timing']).toMatch(/cache;dur=[\d.]+;desc=miss, total;dur=[\d.]+$/);

    const hit = await request(`${url}/products`, { headers: { 'x-request-id': 'client-trace-1' } });
    expect(hit.status).toBe(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.headers.age).toMatch(/^\d+$/);
    expect(hit.text).toBe(miss.text);
    expect(hit.headers['x-request-id']).toBe('client-trace-1');
    expect(hit.headers['x-content-type-options']).toBe('nosniff');
    expect(hit.headers['ratelimit']).toBeUndefined();
    expect(hit.headers['server-timing']).toMatch(/^cache;dur=[\d.]+;desc=hit, total;dur=[\d.]+$/);
  });

  it('gives each allowed origin its own CORS answer, and none to others, from the cache too', async () => {
    const a = 'https://shop.example.com';
    const b = 'http://localhost:5173';
    const first = await request(`${url}/products/2`, { headers: { origin: a } });
    expect(first.status).toBe(200);
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

  it('invalidates by tag on a write', async () => {
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
    expect(health.headers['ratelimit']).toBeUndefined();
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
    const body = report.json<{ score: number; grade: string; recommendations: unknown[] }>();
    expect(body.score).toBeGreaterThanOrEqual(0);
    expect(body.score).toBeLessThanOrEqual(100);
    expect(body.grade).toMatch(/^[A-F]$/);
    expect(Array.isArray(body.recommendations)).toBe(true);
  });
});
