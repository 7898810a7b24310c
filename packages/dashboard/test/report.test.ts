/**
 * The performance report over real HTTP, fed by the fake layers: a healthy app scores an A;
 * a slow route, a useless cache, rate-limit pressure, an open breaker and a leak each cost
 * their documented points and bring the right recommendation to the top.
 */
import http from 'node:http';
import type { LeakSample } from '@perfstack/dashboard';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { FAILED_RULE_SCORE_CAP, gradeOf, type PerformanceReport, RULE_WEIGHTS } from '../src/report.js';
import { buildApp } from './app.js';

let server: TestServer | undefined;
let built: ReturnType<typeof buildApp> | undefined;

afterEach(async () => {
  await built?.board.close();
  await server?.close();
  built = undefined;
  server = undefined;
});

async function start(options: Parameters<typeof buildApp>[0] = {}) {
  built = buildApp({ leakWatch: false, ...options });
  server = await listen(http.createServer(built.app));
  return built.sources;
}

async function report(): Promise<PerformanceReport> {
  const res = await request(`${server!.url}/dashboard/api/report`);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
  expect(res.headers['cache-control']).toBe('no-store');
  return res.json<PerformanceReport>();
}

/** Healthy traffic: fast, cached, few blocks, breakers closed. */
function healthy(sources: Awaited<ReturnType<typeof start>>) {
  for (let i = 0; i < 50; i++) sources.timing.record({ method: 'GET', route: '/fast', status: 200, ms: 20 });
  sources.cache.hits = 90;
  sources.cache.misses = 10;
  sources.cache.routes = { '/fast': { hits: 90, misses: 10, stale: 0, bypass: 0, hitRatio: 0.9 } };
  sources.rateLimit.allowed = 100;
  sources.circuitBreaker.result('GET /fast', true);
}

const rule = (r: PerformanceReport, name: string) => r.rules.find((x) => x.name === name)!;

describe('GET /api/report', () => {
  it('a healthy app: 100, grade A, every rule at full points, no recommendations', async () => {
    healthy(await start());
    const r = await report();
    expect(r.version).toBe(1);
    expect(r.score).toBe(100);
    expect(r.grade).toBe('A');
    expect(Date.parse(r.generatedAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(r.rules.map((x) => [x.name, x.weight, x.points])).toEqual([
      ['latency', 25, 25],
      ['errors', 20, 20],
      ['cache', 15, 15],
      ['rateLimit', 10, 10],
      ['breakers', 10, 10],
      ['eventLoop', 10, 10],
      ['memory', 10, 10],
    ]);
    expect(Object.values(RULE_WEIGHTS).reduce((a, b) => a + b, 0)).toBe(100);
    for (const x of r.rules) expect(x.explanation.length).toBeGreaterThan(20);
    expect(r.inputs).toMatchObject({
      window: '1m',
      requests: 50,
      latencyP95Ms: 20,
      latencyTargetMs: 200,
      errorRate: 0,
      cache: { hits: 90, misses: 10, hitRatio: 0.9 },
      rateLimit: { allowed: 100, blocked: 0, blockedShare: 0 },
      breakers: { total: 1, open: 0, halfOpen: 0, overloaded: false },
      heapUsedBytes: 40 * 1024 * 1024 + 50 * 512,
      heapLimitBytes: 2048 * 1024 * 1024,
      leakAlerts: 0,
    });
    expect(r.recommendations).toEqual([]);
  });

  it('a slow route: the score drops by the latency points and the route is the first recommendation', async () => {
    const sources = await start();
    healthy(sources);
    for (let i = 0; i < 50; i++) sources.timing.record({ method: 'GET', route: '/slow', status: 200, ms: 900 });
    const r = await report();
    // p95 of 100 requests, half at 900 ms: 900 ≥ 4 × 200, so the latency rule scores 0.
    expect(rule(r, 'latency').points).toBe(0);
    expect(r.score).toBe(75);
    expect(r.grade).toBe('C');
    expect(r.recommendations[0]).toEqual({
      rule: 'latency',
      layer: 'cache',
      route: 'GET /slow',
      finding: '`/slow` p95 900 ms against the 200 ms target (50 requests in 5 min, cache hit ratio 0%)',
      action: expect.stringMatching(/^Serve it from the cache: add cache\(\{ ttl, tags \}\) to the route/),
      expectedGain: 'up to +25 points; p95 −700 ms per request on ~0.17 req/s',
      impact: 25,
    });
    // The fast route is not singled out.
    expect(r.recommendations.some((x) => x.route === 'GET /fast')).toBe(false);
  });

  it('the latency target is configurable', async () => {
    const sources = await start({ report: { latencyTargetMs: 1000 } });
    healthy(sources);
    for (let i = 0; i < 50; i++) sources.timing.record({ method: 'GET', route: '/slow', status: 200, ms: 900 });
    const r = await report();
    expect(rule(r, 'latency').points).toBe(25);
    expect(r.score).toBe(100);
    expect(r.inputs.latencyTargetMs).toBe(1000);
  });

  it('a useless cache: hit ratio 12% costs cache points and names the route with "raise ttl or add tags"', async () => {
    const sources = await start();
    healthy(sources);
    sources.cache.hits = 12;
    sources.cache.misses = 88;
    sources.cache.routes = { '/products': { hits: 12, misses: 88, stale: 0, bypass: 0, hitRatio: 0.12 } };
    const r = await report();
    // 15 × 0.12 / 0.8 = 2.25 points.
    expect(rule(r, 'cache').points).toBe(2.25);
    expect(r.score).toBe(87);
    expect(r.grade).toBe('B');
    expect(r.recommendations[0]).toMatchObject({
      rule: 'cache',
      layer: 'cache',
      route: '/products',
      finding: '`/products` cache hit ratio 12% (88 misses in 100 lookups)',
      impact: 12.75,
    });
    expect(r.recommendations[0]!.action).toMatch(/^Raise ttl or add tags/);
  });

  it('names the ttl when the cache stats carry it', async () => {
    const sources = await start();
    healthy(sources);
    sources.cache.hits = 12;
    sources.cache.misses = 88;
    sources.cache.routes = { '/products': { hits: 12, misses: 88, stale: 0, bypass: 0, hitRatio: 0.12, ttlMs: 5000 } };
    const r = await report();
    expect(r.recommendations[0]!.finding).toBe(
      '`/products` cache hit ratio 12% with ttl 5s (88 misses in 100 lookups)',
    );
    expect(r.recommendations[0]!.action).toMatch(/^Raise ttl \(now 5s\) or add tags/);
  });

  it('ranks recommendations by the points they win back', async () => {
    const sources = await start();
    healthy(sources);
    for (let i = 0; i < 50; i++) sources.timing.record({ method: 'GET', route: '/slow', status: 200, ms: 900 });
    sources.cache.hits = 12;
    sources.cache.misses = 88;
    sources.cache.routes = { '/products': { hits: 12, misses: 88, stale: 0, bypass: 0, hitRatio: 0.12 } };
    const r = await report();
    expect(r.recommendations.map((x) => [x.rule, x.route])).toEqual([
      ['latency', 'GET /slow'],
      ['cache', '/products'],
    ]);
    expect(r.score).toBe(62);
    expect(r.grade).toBe('D');
  });

  it('errors, rate-limit pressure and an open breaker each cost their points with a recommendation', async () => {
    const sources = await start();
    healthy(sources);
    for (let i = 0; i < 6; i++) {
      const res = await request(`${server!.url}/api/flaky`);
      expect(res.status).toBe(i < 3 ? 500 : 503);
    }
    sources.rateLimit.blocked = 30;
    sources.rateLimit.allowed = 70;
    const r = await report();
    // 6 of 56 requests are 5xx (10.7%, over 5 × 1%): no error points.
    expect(rule(r, 'errors').points).toBe(0);
    expect(rule(r, 'rateLimit').points).toBe(0);
    expect(rule(r, 'breakers').points).toBe(0);
    expect(r.score).toBe(60);
    expect(r.recommendations.map((x) => [x.rule, x.layer, x.route])).toEqual([
      ['errors', 'app', 'GET /api/flaky'],
      ['rateLimit', 'rate-limit', 'global'],
      ['breakers', 'circuit-breaker', 'GET /api/flaky'],
    ]);
    expect(r.recommendations[1]!.finding).toBe('limit "global" blocked 30% of its requests (30 of 100)');
    expect(r.recommendations[2]!.finding).toMatch(/^breaker "GET \/api\/flaky" is open \(3 failures/);
  });

  it('rules without enough data are not scored and weigh nothing', async () => {
    await start();
    const r = await report();
    expect(rule(r, 'latency').points).toBeNull();
    expect(rule(r, 'errors').points).toBeNull();
    expect(rule(r, 'cache').points).toBeNull();
    expect(rule(r, 'rateLimit').points).toBeNull();
    // Breakers, event loop and memory are scored: 30 of 30.
    expect(r.score).toBe(100);
    expect(r.inputs.window).toBeNull();
  });

  it('a rule with no points left caps the score at 89: an open breaker alone is never an A', async () => {
    const sources = await start();
    healthy(sources);
    for (let i = 0; i < 3; i++) sources.circuitBreaker.result('GET /fast', false);
    const r = await report();
    expect(r.rules.map((x) => [x.name, x.points])).toEqual([
      ['latency', 25],
      ['errors', 20],
      ['cache', 15],
      ['rateLimit', 10],
      ['breakers', 0],
      ['eventLoop', 10],
      ['memory', 10],
    ]);
    // 90 of 100 points would read "A 90" next to an open breaker.
    expect(FAILED_RULE_SCORE_CAP).toBe(89);
    expect(r.score).toBe(89);
    expect(r.grade).toBe('B');
    expect(r.recommendations.map((x) => [x.rule, x.route, x.impact])).toEqual([['breakers', 'GET /fast', 10]]);
  });

  it('too few requests award no error points, but a 5xx rate over the target costs them (1 in 13: not "A 100")', async () => {
    const sources = await start();
    for (let i = 0; i < 12; i++) sources.timing.record({ method: 'GET', route: '/fast', status: 200, ms: 20 });
    sources.timing.record({ method: 'GET', route: '/boom', status: 500, ms: 20 });
    const r = await report();
    expect(r.inputs.window).toBe('1m');
    expect(r.inputs.requests).toBe(13);
    expect(r.inputs.errorRate).toBe(1 / 13);
    expect(rule(r, 'latency').points).toBeNull();
    expect(rule(r, 'errors').points).toBe(0);
    // errors 0 of 20, breakers, event loop and memory 30 of 30 (no breaker: not scored): 30 of 50.
    expect(r.score).toBe(60);
    expect(r.grade).toBe('D');
  });

  it('too few requests, none failing: the errors rule is not scored (too few to award points)', async () => {
    const sources = await start();
    for (let i = 0; i < 12; i++) sources.timing.record({ method: 'GET', route: '/fast', status: 200, ms: 20 });
    const r = await report();
    expect(rule(r, 'errors').points).toBeNull();
    expect(rule(r, 'errors').explanation).toBe(
      'Only 12 requests, 5xx rate 0% within the 1.0% target: not scored until 20.',
    );
    expect(r.score).toBe(100);
  });

  it('a leak alert halves the memory points and comes with its recommendation', async () => {
    let n = 0;
    const sample = (): LeakSample => {
      n++;
      return {
        at: n * 10_000,
        heapUsedBytes: (100 + n * 10) * 1024 * 1024,
        activeResources: 10,
        eventLoopUtilization: 0.1,
      };
    };
    const sources = await start({ leakWatch: { sample } });
    healthy(sources);
    for (let i = 0; i < 10; i++) built!.board.leakWatch!.tick();
    const r = await report();
    expect(rule(r, 'memory').points).toBe(5);
    expect(r.inputs.leakAlerts).toBe(1);
    expect(r.recommendations[0]).toMatchObject({ rule: 'memory', layer: 'process', route: null, impact: 5 });
    expect(r.recommendations[0]!.finding).toMatch(/^Heap used after GC keeps rising: 110\.0 MB → 200\.0 MB/);
  });

  it('board.report() returns the same document without HTTP', async () => {
    healthy(await start());
    const r = built!.board.report();
    expect(r.score).toBe(100);
  });
});

describe('gradeOf', () => {
  it.each([
    [100, 'A'],
    [90, 'A'],
    [89, 'B'],
    [80, 'B'],
    [79, 'C'],
    [70, 'C'],
    [69, 'D'],
    [60, 'D'],
    [59, 'F'],
    [0, 'F'],
  ] as const)('%i → %s', (score, grade) => {
    expect(gradeOf(score)).toBe(grade);
  });
});
