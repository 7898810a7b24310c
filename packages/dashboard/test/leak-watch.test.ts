/**
 * The leak watch: deterministic with injected samples (fires on a sustained climb, stays
 * quiet on a steady or noisy series), and for real on a leaking route with the process
 * sampler at a short interval; plus the cost of its idle timer.
 */
import http from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { OnceLogger } from '@perfstack/core';
import {
  dashboard,
  fitLine,
  type LeakReport,
  type LeakSample,
  LeakWatch,
  ProcessLeakSampler,
} from '@perfstack/dashboard';
import express from 'express';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { fakeSources, memoryLogger } from './fakes.js';

const MB = 1024 * 1024;

let server: TestServer | undefined;
let board: ReturnType<typeof dashboard> | undefined;

afterEach(async () => {
  vi.useRealTimers();
  await board?.close();
  await server?.close();
  board = undefined;
  server = undefined;
});

/** Injected samples, 10 s apart. */
function series(values: readonly Partial<LeakSample>[]): () => LeakSample {
  let i = 0;
  return () => {
    const v = values[Math.min(i, values.length - 1)]!;
    i++;
    return { at: i * 10_000, heapUsedBytes: 100 * MB, activeResources: 10, eventLoopUtilization: 0.1, ...v };
  };
}

describe('leak watch with injected samples', () => {
  it('fires on a sustained heap climb, with the numbers, in the snapshot and on /api/leaks', async () => {
    const values = Array.from({ length: 12 }, (_, i) => ({ heapUsedBytes: (100 + i * 10) * MB }));
    board = dashboard({
      leakWatch: { sample: series(values), interval: '1h' },
      logger: memoryLogger(),
      sources: fakeSources(),
    });
    for (let i = 0; i < 9; i++) board.leakWatch!.tick();
    // 9 samples: fewer than minSamples (10) → quiet.
    expect(board.leakWatch!.alerts()).toEqual([]);
    board.leakWatch!.tick();
    const [alert] = board.leakWatch!.alerts();
    expect(alert).toEqual({
      id: 'leak:heap',
      rule: 'leak-heap',
      severity: 'warning',
      since: 100_000,
      value: 0.9,
      threshold: 0.2,
      message:
        'Heap used after GC keeps rising: 100.0 MB → 190.0 MB over 90 s (10 samples, +60.0 MB/min, +90%, R² 1.00).',
      recommendation: expect.stringMatching(
        /^Something keeps objects alive request after request\. Take two heap snapshots/,
      ),
      layer: 'process',
    });
    expect(board.snapshot().alerts).toContainEqual(alert);

    server = await listen((req, res) => board!(req, res, () => res.end()));
    // `board` is mounted at the root here (no basePath): /api/leaks is at the top.
    const leaks = (await request(`${server.url}/api/leaks`)).json<LeakReport>();
    expect(leaks.enabled).toBe(true);
    expect(leaks.samples).toHaveLength(10);
    expect(leaks.samples[0]).toEqual({
      at: 10_000,
      heapUsedBytes: 100 * MB,
      activeResources: 10,
      eventLoopUtilization: 0.1,
    });
    expect(leaks.trends.find((t) => t.metric === 'heapUsedBytes')).toEqual({
      metric: 'heapUsedBytes',
      samples: 10,
      first: 100 * MB,
      latest: 190 * MB,
      slopePerMinute: 60 * MB,
      growth: 90 * MB,
      relativeGrowth: 0.9,
      r2: 1,
      rising: true,
    });
    expect(leaks.alerts).toEqual([alert]);
    expect(leaks.thresholds).toEqual({
      minSamples: 10,
      minR2: 0.8,
      minGrowth: 0.2,
      minHeapGrowth: 16 * MB,
      minResourceGrowth: 20,
      minEluGrowth: 0.2,
    });
  });

  it('becomes critical once the heap doubled over the window, and clears when the climb stops', () => {
    const values = [
      ...Array.from({ length: 12 }, (_, i) => ({ heapUsedBytes: (50 + i * 10) * MB })),
      ...Array.from({ length: 30 }, () => ({ heapUsedBytes: 160 * MB })),
    ];
    const watch = new LeakWatch(config({ sample: series(values) }), new OnceLogger(memoryLogger()));
    for (let i = 0; i < 12; i++) watch.tick();
    expect(watch.alerts()[0]).toMatchObject({ id: 'leak:heap', severity: 'critical' });
    for (let i = 0; i < 30; i++) watch.tick();
    expect(watch.alerts()).toEqual([]);
  });

  it.each([
    ['steady', Array.from({ length: 30 }, () => ({ heapUsedBytes: 100 * MB }))],
    ['noisy, no trend', Array.from({ length: 30 }, (_, i) => ({ heapUsedBytes: (100 + ((i * 37) % 11) * 4) * MB }))],
    // Grows 40% but as a saw-tooth: the fit is poor (R² < 0.8).
    ['saw-tooth', Array.from({ length: 30 }, (_, i) => ({ heapUsedBytes: (100 + (i % 10) * 12 + i * 0.3) * MB }))],
    // A clean climb that is too small to matter (8 MB < minHeapGrowth 16 MB).
    ['small climb', Array.from({ length: 30 }, (_, i) => ({ heapUsedBytes: 20 * MB + i * 0.28 * MB }))],
    // A clean climb of 20 MB on a 1 GB heap: 2% < minGrowth 20%.
    ['small relative climb', Array.from({ length: 30 }, (_, i) => ({ heapUsedBytes: 1024 * MB + i * 0.7 * MB }))],
  ])('stays quiet on a %s series', (_name, values) => {
    const watch = new LeakWatch(config({ sample: series(values) }), new OnceLogger(memoryLogger()));
    for (let i = 0; i < 30; i++) watch.tick();
    expect(watch.alerts()).toEqual([]);
    expect(watch.report().trends.every((t) => !t.rising)).toBe(true);
  });

  it('fires on climbing handles and names the most common resource types', () => {
    const values = Array.from({ length: 12 }, (_, i) => ({
      activeResources: 10 + i * 10,
      resourceTypes: { TCPSocketWrap: 5 + i * 10, Timeout: 3, FSReqCallback: 2 },
    }));
    const watch = new LeakWatch(config({ sample: series(values) }), new OnceLogger(memoryLogger()));
    for (let i = 0; i < 12; i++) watch.tick();
    const alerts = watch.alerts();
    expect(alerts.map((a) => a.id)).toEqual(['leak:handles']);
    expect(alerts[0]!.message).toBe(
      'Active handles and requests keep rising: 10 → 120 over 110 s (12 samples, +60/min, R² 1.00); most common: TCPSocketWrap ×115, Timeout ×3, FSReqCallback ×2.',
    );
  });

  it('fires on climbing event-loop utilisation', () => {
    const values = Array.from({ length: 12 }, (_, i) => ({ eventLoopUtilization: 0.1 + i * 0.05 }));
    const watch = new LeakWatch(config({ sample: series(values) }), new OnceLogger(memoryLogger()));
    for (let i = 0; i < 12; i++) watch.tick();
    expect(watch.alerts().map((a) => [a.id, a.severity])).toEqual([['leak:event-loop', 'warning']]);
    expect(watch.alerts()[0]!.message).toMatch(/^Event-loop utilisation keeps rising: 10% → 65%/);
  });

  it('a sample() that throws or returns garbage is skipped and logged once', () => {
    const logger = memoryLogger();
    let calls = 0;
    const watch = new LeakWatch(
      config({
        sample: () => {
          calls++;
          if (calls <= 2) throw new Error('boom');
          return { heapUsedBytes: Number.NaN, activeResources: 1, eventLoopUtilization: 0 };
        },
      }),
      new OnceLogger(logger),
    );
    for (let i = 0; i < 4; i++) watch.tick();
    expect(watch.report().samples).toEqual([]);
    expect(logger.lines.map((l) => l.message)).toEqual([
      'DASHBOARD_LEAK_SAMPLE_FAILED: the leak-watch sample() threw; sample skipped',
      'DASHBOARD_LEAK_SAMPLE_INVALID: the leak-watch sample() returned a non-numeric sample; skipped',
    ]);
  });

  it('keeps only the window', () => {
    const watch = new LeakWatch(
      config({ window: 5, minSamples: 3, sample: series([{}]) }),
      new OnceLogger(memoryLogger()),
    );
    for (let i = 0; i < 12; i++) watch.tick();
    expect(watch.report().samples.map((s) => s.at)).toEqual([80_000, 90_000, 100_000, 110_000, 120_000]);
  });

  it('leakWatch: false: no watch, /api/leaks says so', async () => {
    board = dashboard({ leakWatch: false, logger: memoryLogger() });
    expect(board.leakWatch).toBeUndefined();
    server = await listen((req, res) => board!(req, res, () => res.end()));
    expect((await request(`${server.url}/api/leaks`)).json()).toEqual({ enabled: false });
  });
});

describe('fitLine', () => {
  it('fits a line and reports R²', () => {
    expect(fitLine([0, 1, 2, 3], [1, 3, 5, 7])).toEqual({ slope: 2, intercept: 1, r2: 1 });
    expect(fitLine([0, 1, 2, 3], [5, 5, 5, 5])).toEqual({ slope: 0, intercept: 5, r2: 0 });
    expect(fitLine([1], [4])).toEqual({ slope: 0, intercept: 4, r2: 0 });
    const noisy = fitLine([0, 1, 2, 3, 4], [1, 3, 2, 5, 4]);
    expect(noisy.slope).toBeCloseTo(0.8);
    expect(noisy.r2).toBeCloseTo(0.64);
  });
});

describe('leak watch on a real process', () => {
  /** What the leaking route keeps forever (until the test clears it). */
  const retained: number[][] = [];
  // The sampler reads the heap after major GCs. A production window (30 samples × 10 s) sees many
  // of them; a test cannot wait that long, so it compresses time: the watch's own timer is set
  // far out and the test takes each of the window's 20 samples itself, after a fixed number of
  // requests and a forced major GC, for the leaking and the steady route alike. The figures are
  // the real process's (heap after GC, handles, loop utilisation); only the cadence is the
  // test's, so a loaded machine serving fewer requests a second sees the same climb per sample
  // (tests only: `--expose-gc` set at run time, `gc` read from a new context).
  setFlagsFromString('--expose-gc');
  const forceGc = runInNewContext('gc') as () => void;
  const SAMPLES = 20;
  const REQUESTS_PER_SAMPLE = 16;

  async function run(path: '/leak' | '/steady'): Promise<LeakReport> {
    board = dashboard({
      logger: memoryLogger(),
      leakWatch: { interval: 3_600_000, window: SAMPLES, minSamples: 10, minHeapGrowth: '8mb', minGrowth: 0.1 },
    });
    const app = express();
    app.use('/dashboard', board);
    app.get('/leak', (_req, res) => {
      // 64 KB per request, kept in a module-level list: the classic leak (1 MB per sample).
      retained.push(new Array(8192).fill(retained.length));
      res.json({ kept: retained.length });
    });
    app.get('/steady', (_req, res) => {
      const scratch = new Array(8192).fill(1);
      res.json({ sum: scratch.length });
    });
    server = await listen(http.createServer(app));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    try {
      for (let i = 0; i < SAMPLES; i++) {
        for (let j = 0; j < REQUESTS_PER_SAMPLE; j += 4) {
          await Promise.all(Array.from({ length: 4 }, () => request(`${server!.url}${path}`, { agent })));
        }
        forceGc();
        // the GC entry reaches the sampler's PerformanceObserver asynchronously
        await new Promise((resolve) => setTimeout(resolve, 5));
        board.leakWatch!.tick();
      }
    } finally {
      agent.destroy();
    }
    return board.leakWatch!.report();
  }

  it('fires on a route that retains arrays in a module-level list', async () => {
    try {
      const report = await run('/leak');
      const alert = report.alerts.find((a) => a.id === 'leak:heap');
      expect(alert, JSON.stringify(report.trends)).toBeDefined();
      expect(alert!.message).toMatch(/^Heap used after GC keeps rising: /);
      expect(report.samples.length).toBeGreaterThanOrEqual(10);
    } finally {
      retained.length = 0;
    }
  });

  it('stays quiet on a steady route', async () => {
    const report = await run('/steady');
    expect(report.samples.length).toBeGreaterThanOrEqual(10);
    expect(
      report.alerts.filter((a) => a.id === 'leak:heap'),
      JSON.stringify(report.trends),
    ).toEqual([]);
  });
});

describe('idle timer cost', () => {
  it('one sample costs a few µs of CPU: at the default 10 s interval, far under 1% of a core', () => {
    const watch = new LeakWatch(config({}), new OnceLogger(memoryLogger()));
    watch.start();
    try {
      for (let i = 0; i < 100; i++) watch.tick(); // warm-up, fills the window
      const n = 2000;
      const before = process.cpuUsage();
      for (let i = 0; i < n; i++) watch.tick();
      const used = process.cpuUsage(before);
      const cpuUsPerSample = (used.user + used.system) / n;
      // Share of one core = CPU µs per sample × samples per second / 1e6 µs.
      const shareOfCore = (cpuUsPerSample * (1000 / 10_000)) / 1e6;
      expect(shareOfCore).toBeLessThan(0.01 / 10);
    } finally {
      watch.stop();
    }
  });

  it('every idle dashboard timer together (process sampler 1 s, leak watch 10 s) costs under 1% of a core', () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
    // No timing source: the dashboard's own process sampler runs too.
    board = dashboard({ logger: memoryLogger() });
    vi.advanceTimersByTime(60_000); // warm-up
    const simulatedMs = 600_000;
    const before = process.cpuUsage();
    vi.advanceTimersByTime(simulatedMs);
    const used = process.cpuUsage(before);
    const shareOfCore = (used.user + used.system) / 1000 / simulatedMs;
    expect(shareOfCore).toBeLessThan(0.01);
    expect(board.leakWatch!.report().samples.length).toBe(30);
  });

  it('the real sampler reads plausible figures', () => {
    const sampler = new ProcessLeakSampler();
    sampler.start();
    try {
      const s = sampler.sample();
      expect(s.heapUsedBytes).toBeGreaterThan(MB);
      expect(s.activeResources).toBeGreaterThan(0);
      expect(s.eventLoopUtilization).toBeGreaterThanOrEqual(0);
      expect(s.eventLoopUtilization).toBeLessThanOrEqual(1);
      expect(Object.values(s.resourceTypes ?? {}).reduce((a, b) => a + b, 0)).toBe(s.activeResources);
    } finally {
      sampler.stop();
    }
  });
});

/** A resolved config with the defaults, for driving `LeakWatch` directly. */
function config(over: Partial<ConstructorParameters<typeof LeakWatch>[0]>): ConstructorParameters<typeof LeakWatch>[0] {
  return {
    interval: 10_000,
    window: 30,
    minSamples: 10,
    minR2: 0.8,
    minGrowth: 0.2,
    minHeapGrowth: 16 * MB,
    minResourceGrowth: 20,
    minEluGrowth: 0.2,
    sample: undefined,
    ...over,
  };
}
