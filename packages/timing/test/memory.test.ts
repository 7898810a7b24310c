import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setRoute, UNMATCHED_ROUTE, withMiddleware } from '@perfstack/core';
import { OTHER_ROUTE } from '@perfstack/timing';
import { afterAll, describe, expect, it } from 'vitest';
import { listen, type TestServer } from '../../../test/helpers/http.js';
import { blast, closeAll, fakeClock, quietTiming } from './support.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap used after full collections, so only live objects count. */
function liveHeap(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

let server: TestServer | undefined;
afterAll(async () => {
  await server?.close();
  await closeAll();
});

describe('memory', () => {
  it('stays bounded after 100,000 distinct URLs (heap growth measured, not time)', async () => {
    // Each request moves the clock 100 ms, so the warm-up alone turns both slot rings (15 and
    // 5 minutes) once and the measured run turns them eleven more times.
    const clock = fakeClock();
    const t = quietTiming({ clock, maxRoutes: 100, defaultMetrics: false });
    server = await listen(
      withMiddleware(t, (req, res) => {
        // A third of the URLs hit a known pattern, a third name ever-new patterns (past the cap),
        // a third match nothing; every URL is distinct (ids and query strings).
        clock.advance(100);
        const n = Number(/\d+/.exec(req.url ?? '')?.[0] ?? 0);
        if (n % 3 === 0) setRoute(req, '/items/:id');
        else if (n % 3 === 1) setRoute(req, `/generated/${n}`);
        res.statusCode = 200 + (n % 4); // a few statuses too
        res.end('ok');
      }),
    );
    const urls = (from: number, count: number) =>
      Array.from({ length: count }, (_, i) => `/items/${from + i}?session=${(from + i) * 7919}`);

    // Warm up: fill the route cap, the label tables and every ring slot the test will touch.
    expect(await blast(server.url, urls(0, 10_000))).toEqual({ 200: 2500, 201: 2500, 202: 2500, 203: 2500 });
    const before = liveHeap();
    const statuses = await blast(server.url, urls(10_000, 100_000));
    const growth = liveHeap() - before;

    // Nothing is kept per URL: 100k distinct URLs leave the live heap where it was (1 MB is
    // 10 bytes a URL; any map keyed by raw URL would cost tens of MB).
    expect(growth).toBeLessThan(1024 * 1024);

    expect(statuses).toEqual({ 200: 25_000, 201: 25_000, 202: 25_000, 203: 25_000 });
    const snapshot = t.snapshot();
    expect(snapshot.totalRequests).toBe(110_000);
    expect(snapshot.routes.length).toBeLessThanOrEqual(101);
    expect(snapshot.routes.map((r) => r.route)).toContain(OTHER_ROUTE);
    const text = await t.registry.metrics();
    const routeValues = new Set([...text.matchAll(/route="([^"]*)"/g)].map((m) => m[1]));
    expect(routeValues.size).toBeLessThanOrEqual(102); // 100 patterns + other + unmatched
    expect(routeValues.has(UNMATCHED_ROUTE)).toBe(true);
    expect(text).not.toContain('session=');
  });
});
