import { RELATIVE_PRECISION, type Timing } from '@perfstack/timing';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { closeAll, type FakeClock, fakeClock, quietTiming } from './support.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await closeAll();
});

/** An app whose handlers take `?ms=` fake milliseconds, answer `?status=` and set `?cache=` as X-Cache. */
async function serve(t: Timing, clock: FakeClock): Promise<TestServer> {
  const app = express();
  app.use(t);
  const handler: express.RequestHandler = (req, res) => {
    clock.advance(Number(req.query.ms ?? 0));
    if (typeof req.query.cache === 'string') res.setHeader('X-Cache', req.query.cache);
    res.status(Number(req.query.status ?? 200)).send('ok');
  };
  app.get('/users/:id', handler);
  app.get('/products', handler);
  app.post('/orders', handler);
  app.get('/dashboard/api/snapshot', handler);
  app.get('/dashboardish', handler);
  app.get('/metrics', handler);
  return listen(app);
}

async function get(path: string, method = 'GET'): Promise<void> {
  const res = await request(`${server?.url}${path}`, { method });
  expect(res.text).toBe('ok');
}

describe('rolling windows', () => {
  it('ages requests out of the 1-minute window while they stay in the 5- and 15-minute ones', async () => {
    const clock = fakeClock();
    const t = quietTiming({ clock });
    server = await serve(t, clock);
    for (let i = 0; i < 3; i++) await get('/users/1?ms=10');
    let w = t.snapshot().windows;
    expect([w['1m'].requests, w['5m'].requests, w['15m'].requests]).toEqual([3, 3, 3]);
    expect(w['1m'].windowSeconds).toBe(60);
    expect(w['5m'].windowSeconds).toBe(300);
    expect(w['15m'].windowSeconds).toBe(900);

    clock.advance(2 * 60_000);
    w = t.snapshot().windows;
    expect([w['1m'].requests, w['5m'].requests, w['15m'].requests]).toEqual([0, 3, 3]);
    expect(w['1m'].latency).toEqual({ p50: 0, p95: 0, p99: 0, mean: 0, max: 0 });
    expect(w['5m'].latency.max).toBe(10);

    clock.advance(5 * 60_000);
    w = t.snapshot().windows;
    expect([w['1m'].requests, w['5m'].requests, w['15m'].requests]).toEqual([0, 0, 3]);
    // The per-route table covers 5 minutes: the route is gone from it.
    expect(t.snapshot().routes).toEqual([]);

    clock.advance(9 * 60_000);
    w = t.snapshot().windows;
    expect([w['1m'].requests, w['5m'].requests, w['15m'].requests]).toEqual([0, 0, 0]);
    expect(t.snapshot().totalRequests).toBe(3);
  });

  it('reuses a slot when its interval comes round again (old counts never leak into new ones)', async () => {
    const clock = fakeClock();
    const t = quietTiming({ clock });
    server = await serve(t, clock);
    await get('/users/1?ms=500');
    clock.advance(15 * 60_000); // exactly one turn of the 90-slot ring: same slot, new interval
    await get('/users/1?ms=5');
    const w = t.snapshot().windows;
    expect([w['1m'].requests, w['15m'].requests]).toEqual([1, 1]);
    expect(w['15m'].latency.max).toBe(5);
  });

  it('reports p50/p95/p99 within the histogram precision of the true values', async () => {
    const clock = fakeClock();
    const t = quietTiming({ clock });
    server = await serve(t, clock);
    const durations = Array.from({ length: 200 }, (_, i) => i + 1); // 1..200 ms
    for (const ms of durations) await get(`/products?ms=${ms}`);
    const { latency } = t.snapshot().windows['1m'];
    const truth = { p50: 100, p95: 190, p99: 198 }; // nearest rank over 1..200
    for (const key of ['p50', 'p95', 'p99'] as const) {
      expect(Math.abs(latency[key] - truth[key])).toBeLessThanOrEqual(truth[key] * RELATIVE_PRECISION);
    }
    expect(latency.max).toBe(200);
    expect(latency.mean).toBeCloseTo(100.5, 9);
    const route = t.snapshot().routes[0];
    expect(route?.route).toBe('/products');
    expect(Math.abs((route?.p95 ?? 0) - 190)).toBeLessThanOrEqual(190 * RELATIVE_PRECISION);
  });

  it('computes rps over the time the window actually covers', async () => {
    const clock = fakeClock();
    const t = quietTiming({ clock });
    server = await serve(t, clock);
    for (let i = 0; i < 30; i++) await get('/products');
    clock.advance(30_000);
    const w = t.snapshot().windows;
    expect(w['1m'].rps).toBe(1); // 30 requests over the 30 s timing has been running
    expect(w['15m'].rps).toBe(1);
    clock.advance(5 * 60_000);
    expect(t.snapshot().windows['15m'].rps).toBe(30 / 330);
  });

  it('counts errors (5xx only), status classes and cache outcomes from X-Cache', async () => {
    const clock = fakeClock();
    const t = quietTiming({ clock });
    server = await serve(t, clock);
    await get('/products?cache=HIT');
    await get('/products?cache=STALE');
    await get('/products?cache=MISS');
    await get('/products?cache=MISS');
    await get('/products?cache=BYPASS');
    await get('/products');
    await get('/users/1?status=404');
    await get('/users/2?status=500');
    await get('/users/3?status=503');
    await get('/orders?status=201', 'POST');
    const w = t.snapshot().windows['1m'];
    expect(w.requests).toBe(10);
    expect(w.errors).toBe(2);
    expect(w.errorRate).toBe(0.2);
    expect(w.statusClasses).toEqual({ '2xx': 7, '4xx': 1, '5xx': 2 });
    expect(w.cacheHits).toBe(2);
    expect(w.cacheMisses).toBe(2);
    expect(w.cacheHitRatio).toBe(0.5);
  });

  it('keeps a per-route table by method and pattern, busiest first', async () => {
    const clock = fakeClock();
    const t = quietTiming({ clock });
    server = await serve(t, clock);
    for (let i = 0; i < 4; i++) await get(`/users/${i}?ms=20&cache=HIT`);
    await get('/users/9?ms=20&cache=MISS&status=500');
    for (let i = 0; i < 2; i++) await get('/products?ms=300');
    await get('/orders?ms=1', 'POST');
    clock.advance(10_000);
    const routes = t.snapshot().routes;
    expect(routes.map((r) => `${r.method} ${r.route} ${r.count}`)).toEqual([
      'GET /users/:id 5',
      'GET /products 2',
      'POST /orders 1',
    ]);
    expect(routes[0]).toMatchObject({
      errors: 1,
      errorRate: 0.2,
      cacheHits: 4,
      cacheMisses: 1,
      cacheHitRatio: 0.8,
      mean: 20,
    });
    // 5 requests over the 10.701 s timing has been running (the handlers moved the clock 701 ms).
    expect(routes[0]?.rps).toBeCloseTo(5 / 10.701, 12);
    expect(routes[1]).toMatchObject({ errors: 0, errorRate: 0, cacheHitRatio: 0, mean: 300 });
    expect(Math.abs((routes[1]?.p99 ?? 0) - 300)).toBeLessThanOrEqual(300 * RELATIVE_PRECISION);
  });

  it('leaves excluded paths out of the windows and the route table, but not out of Prometheus', async () => {
    const clock = fakeClock();
    const t = quietTiming({ clock, exclude: ['/dashboard/', '/metrics'] });
    server = await serve(t, clock);
    await get('/dashboard/api/snapshot');
    await get('/metrics?x=1');
    await get('/dashboardish');
    const snapshot = t.snapshot();
    expect(snapshot.windows['1m'].requests).toBe(1);
    expect(snapshot.totalRequests).toBe(1);
    expect(snapshot.routes.map((r) => r.route)).toEqual(['/dashboardish']);
    const text = await t.registry.metrics();
    expect(text).toContain('http_requests_total{method="GET",route="/dashboard/api/snapshot",status_code="200"} 1');
    expect(text).toContain('http_requests_total{method="GET",route="/metrics",status_code="200"} 1');
  });

  it('returns the TimingSnapshot shape the dashboard reads', async () => {
    const clock = fakeClock();
    const t = quietTiming({
      clock,
      sampleProcess: () => ({
        rssBytes: 1,
        heapUsedBytes: 2,
        heapTotalBytes: 3,
        heapLimitBytes: 4,
        eventLoopDelayMs: { p50: 5, p99: 6, max: 7 },
        cpuPercent: 8,
        uptimeSeconds: 9,
      }),
    });
    server = await serve(t, clock);
    await get('/products');
    const snapshot = t.snapshot();
    expect(Object.keys(snapshot).sort()).toEqual(
      ['alerts', 'at', 'inFlight', 'process', 'routes', 'totalRequests', 'windows'].sort(),
    );
    expect(snapshot.at).toBe(clock.now());
    expect(snapshot.process.cpuPercent).toBe(8);
    expect(snapshot.alerts).toEqual([]);
    expect(Object.keys(snapshot.windows['1m']).sort()).toEqual(
      [
        'cacheHitRatio',
        'cacheHits',
        'cacheMisses',
        'errorRate',
        'errors',
        'latency',
        'requests',
        'rps',
        'statusClasses',
        'windowSeconds',
      ].sort(),
    );
    expect(JSON.parse(JSON.stringify(snapshot))).toEqual(snapshot);
  });

  it('samples real process figures by default', () => {
    const t = quietTiming();
    t.sample();
    const p = t.snapshot().process;
    expect(p.rssBytes).toBeGreaterThan(0);
    expect(p.heapUsedBytes).toBeGreaterThan(0);
    expect(p.heapLimitBytes).toBeGreaterThan(p.heapUsedBytes);
    expect(p.cpuPercent).toBeGreaterThanOrEqual(0);
    expect(p.eventLoopDelayMs.max).toBeGreaterThanOrEqual(0);
    expect(p.uptimeSeconds).toBeGreaterThan(0);
  });
});
