import type { Alert, PerfstackLogger, ProcessStats } from '@perfstack/core';
import { RELATIVE_PRECISION, type ResolvedAlert, type Timing, type TimingOptions } from '@perfstack/timing';
import express from 'express';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { closeAll, type FakeClock, fakeClock, quietTiming } from './support.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await closeAll();
});

const MB = 1024 * 1024;

/** Process figures the test sets by hand. */
function fabricatedProcess(): ProcessStats & {
  cpuPercent: number;
  heapUsedBytes: number;
  rssBytes: number;
  eventLoopDelayMs: ProcessStats['eventLoopDelayMs'];
} {
  return {
    rssBytes: 200 * MB,
    heapUsedBytes: 100 * MB,
    heapTotalBytes: 150 * MB,
    heapLimitBytes: 1000 * MB,
    eventLoopDelayMs: { p50: 10, p99: 12, max: 20 },
    cpuPercent: 10,
    uptimeSeconds: 100,
  };
}

interface Harness {
  readonly t: Timing;
  readonly clock: FakeClock;
  readonly proc: ReturnType<typeof fabricatedProcess>;
  readonly fired: Alert[];
  /** Clock time of each `alert` event. */
  readonly firedAt: number[];
  readonly resolved: ResolvedAlert[];
  /** Sends GET `path` `times` times. */
  send(path: string, times?: number): Promise<void>;
  /** For `seconds` of fake time, every 10 s: run `traffic`, then sample. */
  run(seconds: number, traffic?: () => Promise<void>): Promise<void>;
}

async function harness(options: TimingOptions = {}): Promise<Harness> {
  const clock = fakeClock();
  const proc = fabricatedProcess();
  const t = quietTiming({ clock, sampleProcess: () => ({ ...proc }), ...options });
  const fired: Alert[] = [];
  const firedAt: number[] = [];
  const resolved: ResolvedAlert[] = [];
  t.on('alert', (a) => {
    fired.push(a);
    firedAt.push(clock.now());
  });
  t.on('resolved', (a) => resolved.push(a));
  const app = express();
  app.use(t);
  const handler: express.RequestHandler = (req, res) => {
    clock.advance(Number(req.query.ms ?? 1));
    if (typeof req.query.cache === 'string') res.setHeader('X-Cache', req.query.cache);
    res.status(Number(req.query.status ?? 200)).send('ok');
  };
  app.get('/reports/:year', handler);
  app.get('/products', handler);
  app.get('/orders/:id', handler);
  app.get('/health', handler);
  server = await listen(app);
  const url = server.url;
  const send = async (path: string, times = 1) => {
    for (let i = 0; i < times; i++) expect((await request(`${url}${path}`)).text).toBe('ok');
  };
  const run = async (seconds: number, traffic?: () => Promise<void>) => {
    for (let elapsed = 0; elapsed < seconds; elapsed += 10) {
      await traffic?.();
      t.sample();
      clock.advance(10_000);
    }
  };
  return { t, clock, proc, fired, firedAt, resolved, send, run };
}

describe('default alert rules', () => {
  it('cpu: fires after 2 minutes above 80%, names the busiest route, and resolves', async () => {
    const h = await harness();
    await h.send('/reports/2024?ms=40', 5);
    await h.send('/products?ms=2', 20);
    h.proc.cpuPercent = 95;
    const start = h.clock.now();
    await h.run(120);
    expect(h.fired).toEqual([]); // 0 s .. 110 s: pending
    h.t.sample(); // at 120 s
    expect(h.fired).toHaveLength(1);
    const alert = h.fired[0] as Alert;
    expect(alert).toMatchObject({
      id: `cpu@${start}`,
      rule: 'cpu',
      severity: 'warning',
      since: start,
      value: 95,
      threshold: 80,
      layer: 'cache',
      route: '/reports/:year',
      message: 'CPU use has been above 80% of one core for 2 min (now 95%).',
    });
    expect(alert.recommendation).toContain('Route GET /reports/:year takes the most server time');
    expect(alert.recommendation).toContain('cache layer');
    expect(h.t.snapshot().alerts).toEqual([alert]);

    h.proc.cpuPercent = 40;
    h.t.sample();
    expect(h.resolved).toEqual([{ ...alert, resolvedAt: h.clock.now() }]);
    expect(h.t.snapshot().alerts).toEqual([]);
  });

  it('cpu: a spike that does not hold for the whole duration does not fire', async () => {
    const h = await harness();
    h.proc.cpuPercent = 95;
    await h.run(100);
    h.proc.cpuPercent = 30; // dips once
    await h.run(10);
    h.proc.cpuPercent = 95;
    await h.run(110);
    expect(h.fired).toEqual([]);
    await h.run(20);
    expect(h.fired.map((a) => a.rule)).toEqual(['cpu']);
  });

  it('memory: fires on heap used / heap limit above 85% for 2 minutes, and resolves', async () => {
    const h = await harness();
    h.proc.heapUsedBytes = 900 * MB;
    await h.run(130);
    expect(h.fired).toHaveLength(1);
    expect(h.fired[0]).toMatchObject({
      rule: 'memory',
      severity: 'critical',
      value: 0.9,
      threshold: 0.85,
      layer: 'cache',
    });
    expect(h.fired[0]?.message).toBe('Heap used is 90% of the V8 heap limit (900 MB of 1000 MB), above 85% for 2 min.');
    expect(h.fired[0]?.recommendation).toContain("Lower the cache layer's maxBytes or maxEntries");
    h.proc.heapUsedBytes = 300 * MB;
    h.t.sample();
    expect(h.resolved.map((a) => a.rule)).toEqual(['memory']);
  });

  it('memory: with limitBytes, judges RSS against that limit', async () => {
    const h = await harness({ alerts: { memory: { limitBytes: '512mb', threshold: 0.5, for: '30s' } } });
    h.proc.rssBytes = 300 * MB;
    await h.run(40);
    expect(h.fired).toHaveLength(1);
    expect(h.fired[0]?.value).toBeCloseTo(300 / 512, 12);
    expect(h.fired[0]?.message).toBe('Resident memory is 58.6% of the 512 MB limit (300 MB), above 50% for 30 s.');
  });

  it('errorRate: fires after 1 minute above 5%, names the failing route, and resolves', async () => {
    const h = await harness();
    const failing = async () => {
      await h.send('/products', 8);
      await h.send('/orders/7?status=502', 2);
    };
    await h.run(60, failing);
    expect(h.fired).toEqual([]);
    await h.run(10, failing);
    expect(h.fired).toHaveLength(1);
    const alert = h.fired[0] as Alert;
    expect(alert).toMatchObject({
      rule: 'errorRate',
      severity: 'critical',
      threshold: 0.05,
      layer: 'app',
      route: '/orders/:id',
    });
    expect(alert.value).toBe(0.2);
    expect(alert.recommendation).toMatch(/^Route GET \/orders\/:id answered 14 of its 14 requests with a 5xx in 5 min/);
    expect(alert.recommendation).toContain('circuit-breaker layer');
    // Healthy traffic: the 1-minute window recovers.
    await h.run(70, () => h.send('/products', 10));
    expect(h.resolved.map((a) => a.rule)).toEqual(['errorRate']);
  });

  it('errorRate: needs minRequests in the window before judging', async () => {
    const h = await harness();
    await h.run(120, () => h.send('/orders/1?status=500', 1)); // at most 6 requests a minute
    expect(h.fired).toEqual([]);
  });

  it('latency: fires after 5 minutes of mean latency above 200 ms, names the slowest route by p95', async () => {
    const h = await harness();
    const slow = async () => {
      await h.send('/reports/2023?ms=900', 1);
      await h.send('/products?ms=150', 3);
    };
    // The handlers move the clock too (1.35 s a round), so judge by the clock, not by rounds.
    // The rule first judges at the third round, once the window holds minRequests (10) requests.
    const firstJudged = h.clock.now() + 2 * 10_000 + 3 * 1350;
    await h.run(290, slow);
    expect(h.fired).toEqual([]);
    await h.run(40, slow);
    expect(h.fired).toHaveLength(1);
    expect(h.fired[0]?.since).toBe(firstJudged);
    const held = (h.firedAt[0] as number) - firstJudged;
    expect(held).toBeGreaterThanOrEqual(300_000);
    expect(held).toBeLessThan(300_000 + 11_350);
    const alert = h.fired[0] as Alert;
    expect(alert).toMatchObject({
      rule: 'latency',
      severity: 'warning',
      threshold: 200,
      layer: 'cache',
      route: '/reports/:year',
    });
    expect(alert.value).toBeCloseTo(337.5, 9);
    const p95 = Number(/^Route GET \/reports\/:year is the slowest \(p95 (\d+) ms, /.exec(alert.recommendation)?.[1]);
    expect(Math.abs(p95 - 900)).toBeLessThanOrEqual(900 * RELATIVE_PRECISION + 0.5);
    expect(alert.recommendation).toContain("circuit-breaker layer's timeout");
    await h.run(70, () => h.send('/products?ms=5', 4));
    expect(h.resolved.map((a) => a.rule)).toEqual(['latency']);
  });

  it('cacheHitRate: fires after 5 minutes below 70%, names the route with most misses, and resolves', async () => {
    const h = await harness();
    const missing = async () => {
      await h.send('/products?cache=MISS', 3);
      await h.send('/products?cache=HIT', 1);
      await h.send('/reports/1?cache=HIT', 1);
      await h.send('/health', 2); // no X-Cache: not a lookup
    };
    await h.run(300, missing);
    expect(h.fired).toEqual([]);
    await h.run(20, missing);
    expect(h.fired).toHaveLength(1);
    const alert = h.fired[0] as Alert;
    expect(alert).toMatchObject({
      rule: 'cacheHitRate',
      severity: 'warning',
      threshold: 0.7,
      layer: 'cache',
      route: '/products',
    });
    expect(alert.value).toBe(0.4);
    expect(alert.recommendation).toMatch(/^Route GET \/products missed the cache \d+ times in 5 min \(hit ratio 25%\)/);
    expect(alert.recommendation).toContain('raise its ttl');
    await h.run(70, () => h.send('/products?cache=HIT', 5));
    expect(h.resolved.map((a) => a.rule)).toEqual(['cacheHitRate']);
  });

  it('cacheHitRate: stays quiet when there were no cache lookups', async () => {
    const h = await harness();
    await h.run(600, () => h.send('/health', 3));
    expect(h.fired).toEqual([]);
  });
});

describe('alert configuration', () => {
  it('takes thresholds, durations and severities, and turns single rules off', async () => {
    const h = await harness({ alerts: { cpu: { threshold: 50, for: '20s', severity: 'critical' }, memory: false } });
    h.proc.cpuPercent = 60;
    h.proc.heapUsedBytes = 990 * MB;
    await h.run(30);
    expect(h.fired.map((a) => [a.rule, a.severity, a.threshold])).toEqual([['cpu', 'critical', 50]]);
  });

  it('runs custom rules as functions of the snapshot', async () => {
    const h = await harness({
      alerts: {
        cpu: false,
        rules: [
          {
            name: 'event-loop',
            threshold: 100,
            for: '10s',
            value: (s) => s.process.eventLoopDelayMs.p99,
            recommendation: (value, s) => ({
              recommendation: `Event-loop p99 is ${value} ms; move CPU work off ${s.routes[0]?.route ?? 'the app'}.`,
              layer: 'app',
              route: s.routes[0]?.route,
            }),
          },
          {
            name: 'quiet',
            threshold: 1,
            when: 'below',
            severity: 'critical',
            value: (s) => s.windows['1m'].requests,
            recommendation: 'No traffic: check the load balancer.',
          },
        ],
      },
    });
    h.t.sample();
    expect(h.fired.map((a) => a.rule)).toEqual(['quiet']);
    expect(h.fired[0]).toMatchObject({
      severity: 'critical',
      message: 'quiet is 0, below the threshold 1.',
      recommendation: 'No traffic: check the load balancer.',
    });
    await h.send('/products');
    h.proc.eventLoopDelayMs = { p50: 90, p99: 250, max: 300 };
    await h.run(20);
    expect(h.fired.map((a) => a.rule)).toEqual(['quiet', 'event-loop']);
    expect(h.fired[1]).toMatchObject({
      value: 250,
      layer: 'app',
      route: '/products',
      recommendation: 'Event-loop p99 is 250 ms; move CPU work off /products.',
    });
    expect(h.resolved.map((a) => a.rule)).toEqual(['quiet']);
  });

  it('logs a throwing rule or listener once and keeps evaluating the others', async () => {
    const logger: PerfstackLogger = { warn: vi.fn(), error: vi.fn() };
    const h = await harness({
      logger,
      alerts: {
        rules: [
          {
            name: 'broken',
            threshold: 0,
            value: () => {
              throw new Error('bad rule');
            },
            recommendation: 'n/a',
          },
        ],
      },
    });
    h.t.on('alert', () => {
      throw new Error('bad listener');
    });
    h.proc.cpuPercent = 99;
    await h.run(130);
    expect(h.fired.map((a) => a.rule)).toEqual(['cpu']);
    expect(logger.error).toHaveBeenCalledTimes(2);
    expect(vi.mocked(logger.error).mock.calls.map((c) => c[0])).toEqual([
      'TIMING_RULE_FAILED:broken: alert rule "broken" threw; it counts as not holding',
      'TIMING_LISTENER_FAILED:alert: a "alert" listener threw',
    ]);
  });

  it('stops calling a listener once it is disposed', async () => {
    const h = await harness({ alerts: { cpu: { for: 0 } } });
    const seen: string[] = [];
    const subscription = h.t.on('alert', (a) => seen.push(a.rule));
    subscription.dispose();
    h.proc.cpuPercent = 99;
    h.t.sample();
    expect(seen).toEqual([]);
    expect(h.fired.map((a) => a.rule)).toEqual(['cpu']);
  });

  it('raises nothing with alerts: false', async () => {
    const h = await harness({ alerts: false });
    h.proc.cpuPercent = 99;
    h.proc.heapUsedBytes = 999 * MB;
    await h.run(600, () => h.send('/orders/1?status=500&ms=999&cache=MISS', 10));
    expect(h.fired).toEqual([]);
    expect(h.t.snapshot().alerts).toEqual([]);
  });

  it('rejects unknown events and non-function listeners', async () => {
    const h = await harness();
    expect(() => h.t.on('fired' as 'alert', () => {})).toThrow(
      new TypeError('@perfstack/timing: unknown event "fired"; events: alert, resolved'),
    );
    expect(() => h.t.on('alert', 'nope' as never)).toThrow(
      new TypeError('@perfstack/timing: the listener for "alert" must be a function'),
    );
  });
});
