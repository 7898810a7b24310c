/**
 * The dashboard's figures are exact (issue 20, item 1), on Express, Koa and node:http, over
 * real HTTP with the full preset:
 *
 * - the cache hit ratio counts cacheable lookups only; an uncached route's requests are
 *   counted apart (`bypass`), never as misses, and get no cache recommendation;
 * - a 429 flood is filed under the route the requests would have reached (`/api/:id`), or
 *   under its path prefix (`/api/*`) on node:http where no router runs before the refusal;
 * - no recommendation wins zero points back;
 * - an error rate over its target never leaves the grade at A (the 7.69% "A 100");
 * - an idle process reads event-loop delay p50 ≤ 1 ms (`monitorEventLoopDelay` at 10 ms, net
 *   of that period), not the monitor's resolution.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import Router from '@koa/router';
import { LOOP_DELAY_RESOLUTION_MS } from '@perfstack/core';
import express from 'express';
import Koa from 'koa';
import { cache, type PerformanceStack, type PerformanceStackOptions, performanceStack } from 'perfstack';
import { cache as koaCache, performanceStack as koaStack } from 'perfstack/koa';
import { createListener, cache as nodeCache, performanceStack as nodeStack, setRoute } from 'perfstack/node';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request } from '../helpers/http.js';

const quiet = { warn() {}, error() {} };

interface Running {
  readonly url: string;
  /** The Connect-style stack (Koa's `.stack`). */
  readonly stack: PerformanceStack;
}

/** What each test started, closed in order afterwards (servers first, then their stacks). */
const started: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const each of started.splice(0).reverse()) await each.close();
});

function options(extra: PerformanceStackOptions): PerformanceStackOptions {
  // No access log: every refusal after the first is then answered early (refusal-gate.ts).
  return { env: false, log: quiet, logger: false, redis: false, rateLimit: { limit: 1000, window: '1h' }, ...extra };
}

/**
 * The same demo-shaped app on each framework: `/` uncached, `/products` and `/rare` cached
 * with `cache()`, `/api/:id` plain, `/boom` a 500.
 */
const frameworks = {
  async Express(extra: PerformanceStackOptions): Promise<Running> {
    const stack = performanceStack(options(extra));
    started.push(stack);
    const app = express();
    app.use(stack);
    app.use('/dashboard', stack.dashboard());
    app.get('/metrics', stack.metrics());
    app.get('/', (_req, res) => {
      res.json({ name: 'demo' });
    });
    app.get('/products', cache({ ttl: '30s' }), (_req, res) => {
      res.json([{ id: 1 }]);
    });
    app.get('/rare', cache({ ttl: '30s' }), (_req, res) => {
      res.json({ rare: true });
    });
    app.get('/api/:id', (req, res) => {
      res.json({ id: req.params.id });
    });
    app.get('/boom', (_req, res) => {
      res.status(500).json({ error: 'boom' });
    });
    const server = await listen(app);
    started.push(server);
    return { url: server.url, stack };
  },
  async Koa(extra: PerformanceStackOptions): Promise<Running> {
    const stack = koaStack(options(extra));
    started.push(stack);
    const app = new Koa();
    app.use(stack);
    app.use(stack.endpoints());
    const router = new Router();
    router.get('/', (ctx) => {
      ctx.body = { name: 'demo' };
    });
    router.get('/products', koaCache({ ttl: '30s' }), (ctx) => {
      ctx.body = [{ id: 1 }];
    });
    router.get('/rare', koaCache({ ttl: '30s' }), (ctx) => {
      ctx.body = { rare: true };
    });
    router.get('/api/:id', (ctx) => {
      ctx.body = { id: ctx.params.id };
    });
    router.get('/boom', (ctx) => {
      ctx.status = 500;
      ctx.body = { error: 'boom' };
    });
    app.use(router.routes());
    const server = await listen(app.callback());
    started.push(server);
    return { url: server.url, stack: stack.stack };
  },
  async 'node:http'(extra: PerformanceStackOptions): Promise<Running> {
    const stack = nodeStack(options(extra));
    started.push(stack);
    const productsCache = nodeCache({ ttl: '30s' });
    const rareCache = nodeCache({ ttl: '30s' });
    const json = (res: ServerResponse, status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(body));
    };
    // A hand-written router that names its routes as it runs (setRoute): no `route` option,
    // so nothing names a request the stack refuses before the app runs.
    const app = (req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '/').split('?')[0] as string;
      const api = /^\/api\/([^/]+)$/.exec(path);
      if (path === '/') {
        setRoute(req, '/');
        json(res, 200, { name: 'demo' });
      } else if (path === '/products') {
        setRoute(req, '/products');
        productsCache(req, res, () => json(res, 200, [{ id: 1 }]));
      } else if (path === '/rare') {
        setRoute(req, '/rare');
        rareCache(req, res, () => json(res, 200, { rare: true }));
      } else if (api !== null) {
        setRoute(req, '/api/:id');
        json(res, 200, { id: api[1] });
      } else if (path === '/boom') {
        setRoute(req, '/boom');
        json(res, 500, { error: 'boom' });
      } else json(res, 404, { error: 'not found' });
    };
    const server = await listen(createListener(stack, app));
    started.push(server);
    return { url: server.url, stack };
  },
} as const;

interface Snapshot {
  requests: { total: number; errors: number; errorRate: number };
  cache: { hits: number; misses: number; stale: number; bypass: number; hitRatio: number };
  routes: Array<{ method: string; route: string; count: number; cacheHitRatio: number }>;
  process: { eventLoopDelayMs: { p50: number; p99: number; max: number } };
}

interface Report {
  score: number;
  grade: string;
  inputs: { requests: number; errorRate: number; cache: { hits: number; misses: number; hitRatio: number } | null };
  rules: Array<{ name: string; points: number | null; explanation: string }>;
  recommendations: Array<{ rule: string; route: string | null; impact: number; expectedGain: string }>;
}

async function snapshot(url: string): Promise<Snapshot> {
  const res = await request(`${url}/dashboard/api/snapshot`);
  expect(res.status).toBe(200);
  return res.json<Snapshot>();
}

async function report(url: string): Promise<Report> {
  const res = await request(`${url}/dashboard/api/report`);
  expect(res.status).toBe(200);
  return res.json<Report>();
}

async function times(n: number, url: string, expected: number): Promise<void> {
  for (let i = 0; i < n; i++) expect((await request(url)).status).toBe(expected);
}

const metricLine = (text: string, prefix: string) => text.split('\n').find((line) => line.startsWith(prefix));

describe.each(Object.keys(frameworks) as Array<keyof typeof frameworks>)('exact figures on %s', (name) => {
  const start = frameworks[name];

  it('the hit ratio counts cacheable lookups only; an uncached route is counted apart and never advised a ttl', async () => {
    const { url } = await start({});
    await times(25, `${url}/`, 200);
    await times(20, `${url}/products`, 200);
    const s = await snapshot(url);
    // 25 requests to `/` (no cache(), no freshness: may not be stored) are bypasses, not misses.
    expect(s.cache).toMatchObject({ hits: 19, misses: 1, stale: 0, bypass: 25, hitRatio: 0.95 });
    const products = s.routes.find((r) => r.route === '/products');
    expect(products).toMatchObject({ method: 'GET', count: 20, cacheHitRatio: 0.95 });
    const r = await report(url);
    expect(r.inputs.cache).toEqual({ hits: 19, misses: 1, hitRatio: 0.95 });
    const cacheRule = r.rules.find((x) => x.name === 'cache');
    expect(cacheRule?.points).toBe(15);
    expect(cacheRule?.explanation).toContain('Hit ratio 95% of 20 lookups');
    expect(r.recommendations.filter((x) => x.rule === 'cache')).toEqual([]);
  });

  it('a 429 flood on /api/7 is filed under the route it would have reached, never `unmatched`', async () => {
    const { url } = await start({ rateLimit: { limit: 3, window: '1h' } });
    await times(3, `${url}/api/7`, 200);
    await times(7, `${url}/api/7`, 429);
    // node:http: no router runs before the stack refuses, so the path prefix names it.
    const pattern = name === 'node:http' ? '/api/*' : '/api/:id';
    const metrics = (await request(`${url}/metrics`)).text;
    expect(
      metricLine(metrics, `http_request_duration_seconds_count{method="GET",route="${pattern}",status_code="429"}`),
    ).toMatch(/ 7$/);
    expect(metrics).not.toMatch(/route="unmatched"/);
    const s = await snapshot(url);
    expect(s.routes.find((r) => r.route === 'unmatched')).toBeUndefined();
    const refused = s.routes.find((r) => r.route === pattern);
    expect(refused?.count).toBe(name === 'node:http' ? 7 : 10);
    // Refusals are no cache lookups: the chain's 429 (the first one) is a bypass, not a miss.
    expect(s.cache).toMatchObject({ hits: 0, misses: 0 });
  });

  it('no recommendation wins zero points back', async () => {
    const { url } = await start({ dashboard: { report: { minRequests: 5 } } });
    await times(30, `${url}/products`, 200);
    for (let i = 0; i < 5; i++) expect((await request(`${url}/rare?page=${i}`)).status).toBe(200);
    const r = await report(url);
    // 29 hits of 35 lookups (82.9%) meet the 80% target: the cache rule has lost nothing, so
    // `/rare` (0 of 5) has nothing to win back and is not listed "+0 points".
    expect(r.inputs.cache).toEqual({ hits: 29, misses: 6, hitRatio: 29 / 35 });
    expect(r.rules.find((x) => x.name === 'cache')?.points).toBe(15);
    expect(r.recommendations.filter((x) => x.impact <= 0 && x.rule !== 'retry-rate')).toEqual([]);
    expect(r.recommendations.map((x) => x.expectedGain).filter((g) => g.startsWith('up to +0 '))).toEqual([]);
  });

  it('an error rate over its target never grades A 100 (1 failure in 13 requests)', async () => {
    const { url } = await start({});
    await times(12, `${url}/`, 200);
    await times(1, `${url}/boom`, 500);
    const s = await snapshot(url);
    expect(s.requests).toMatchObject({ total: 13, errors: 1, errorRate: 1 / 13 });
    const r = await report(url);
    expect(r.inputs.requests).toBe(13);
    expect(r.inputs.errorRate).toBe(1 / 13);
    const errors = r.rules.find((x) => x.name === 'errors');
    // 7.7% is over 5× the 1% target: no points, although 13 is under minRequests (20).
    expect(errors?.points).toBe(0);
    expect(errors?.explanation).toBe(
      '5xx rate 7.7% over the last 1m (only 13 requests: scored because it is over the target); the rule loses its points linearly up to 5× the 1.0% target.',
    );
    expect(r.grade).not.toBe('A');
    expect(r.score).toBeLessThanOrEqual(60);
  });

  it(`an idle process reads event-loop delay p50 ≤ 1 ms (monitorEventLoopDelay at ${LOOP_DELAY_RESOLUTION_MS} ms, net of it)`, async () => {
    const { url, stack } = await start({});
    expect(LOOP_DELAY_RESOLUTION_MS).toBe(10);
    const timing = stack.layers.timing;
    if (timing === undefined) throw new Error('timing is on by default');
    // Idle stretches of 100 ms, each sampled on its own; on a shared machine one stretch may be
    // descheduled, so the quietest of up to 10 is read. The old reading (the 10 ms period
    // included) could never go under 10 ms.
    const readings: number[] = [];
    for (let i = 0; i < 10; i++) {
      timing.sample();
      await new Promise((resolve) => setTimeout(resolve, 100));
      timing.sample();
      const p = (await snapshot(url)).process.eventLoopDelayMs;
      expect(p.p50).toBeGreaterThanOrEqual(0);
      expect(p.p99).toBeGreaterThanOrEqual(p.p50);
      readings.push(p.p50);
      if (p.p50 <= 1) break;
    }
    expect(Math.min(...readings)).toBeLessThanOrEqual(1);
  });
});
