/**
 * The server-side history (`GET /api/history`): bounded fine and coarse tiers folded from
 * snapshots, over real HTTP; with real Redis, a coarse point written by one instance is
 * read by a new one (the fleet's history survives a restart).
 */
import http from 'node:http';
import { createSharedRedis, OnceLogger, silentLogger } from '@perfstack/core';
import { dashboard } from '@perfstack/dashboard';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { cleanPrefix, redisUrl, uniquePrefix } from '../../../test/helpers/redis.js';
import { foldPoints, History, type HistoryPoint, type HistoryReport } from '../src/history.js';
import type { DashboardSnapshot } from '../src/snapshot.js';
import { buildApp } from './app.js';
import { fakeSources } from './fakes.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A snapshot with the fields the history reads; the rest is never read. */
function snapshotWith(v: {
  rps: number;
  p99: number;
  errorRate?: number;
  hits?: number;
  misses?: number;
  blocked?: number;
  open?: number;
  rss?: number;
}): DashboardSnapshot {
  const hits = v.hits ?? 0;
  const misses = v.misses ?? 0;
  return {
    requests: { rps: v.rps, errorRate: v.errorRate ?? 0 },
    latency: { p50: v.p99 / 4, p95: v.p99 / 2, p99: v.p99, mean: 0, max: 0 },
    cache: { hits, misses, hitRatio: hits + misses === 0 ? 0 : hits / (hits + misses) },
    rateLimit: { blocked: v.blocked ?? 0 },
    breakers: { open: v.open ?? 0, halfOpen: 0 },
    process: { eventLoopDelayMs: { p50: 1, p99: 2 }, rssBytes: v.rss ?? 100, heapUsedBytes: 50 },
    fleet: null,
  } as unknown as DashboardSnapshot;
}

function history(snapshots: DashboardSnapshot[], clock: { now: number }, redis?: ReturnType<typeof createSharedRedis>) {
  let i = 0;
  return new History({
    config: { fineStep: 10_000, finePoints: 3, coarseStep: 30_000, coarsePoints: 2 },
    snapshot: () => snapshots[Math.min(i++, snapshots.length - 1)] as DashboardSnapshot,
    now: () => clock.now,
    redis,
    log: new OnceLogger(silentLogger),
  });
}

describe('History', () => {
  it('keeps the last finePoints fine points and folds each coarse interval once it has passed', () => {
    const clock = { now: 1_000_020_000 }; // 20 s into a 30 s interval
    const h = history(
      [
        snapshotWith({ rps: 10, p99: 40, hits: 0, misses: 0, blocked: 0, rss: 100 }),
        snapshotWith({ rps: 20, p99: 80, hits: 3, misses: 1, blocked: 50, open: 1, rss: 300 }),
        snapshotWith({ rps: 30, p99: 60, hits: 1, misses: 1, blocked: 50, rss: 200 }),
        snapshotWith({ rps: 40, p99: 10, hits: 2, misses: 2, blocked: 70, rss: 100 }),
      ],
      clock,
    );
    h.sample(); // 1,000,020,000: interval [1,000,020,000 … 1,000,050,000)
    clock.now += 10_000;
    h.sample();
    clock.now += 10_000;
    h.sample();
    clock.now += 10_000; // 1,000,050,000: the next interval; the first is closed
    h.sample();
    const r = h.report();
    expect(r.fine.capacity).toBe(3);
    expect(r.fine.points.map((p) => [p.at, p.rps, p.p99])).toEqual([
      [1_000_030_000, 20, 80],
      [1_000_040_000, 30, 60],
      [1_000_050_000, 40, 10],
    ]);
    // Blocked per second between samples: 50 in 10 s → 5, then 0, then 20 in 10 s → 2.
    expect(r.fine.points.map((p) => p.blockedPerSecond)).toEqual([5, 0, 2]);
    expect(r.coarse.points).toEqual([
      {
        at: 1_000_020_000,
        rps: 20, // mean of 10, 20, 30
        p50: 20,
        p95: 40,
        p99: 80, // max
        errorRate: 0,
        hitRatio: (0.75 + 0.5) / 2, // the first sample had no lookups: left out, not counted as 0
        blockedPerSecond: 5 / 3,
        open: 1,
        halfOpen: 0,
        loopP50: 1,
        loopP99: 2,
        rssBytes: 300,
        heapUsedBytes: 50,
      },
    ]);
  });

  it('foldPoints of points without cache lookups has hitRatio null', () => {
    const p: HistoryPoint = { ...foldPoints(0, []), hitRatio: null };
    expect(foldPoints(5, [p, p]).hitRatio).toBeNull();
    expect(foldPoints(5, [p]).at).toBe(5);
  });

  it('with Redis, a new instance starts with the coarse points the fleet wrote', async () => {
    const url = await redisUrl();
    const keyPrefix = uniquePrefix('history');
    cleanups.push(() => cleanPrefix(url, keyPrefix));
    const redisA = createSharedRedis({ url, keyPrefix, logger: silentLogger, commandTimeout: 5000 });
    await redisA.connect();
    cleanups.push(() => redisA.close());
    const clock = { now: 2_000_010_000 };
    const a = history([snapshotWith({ rps: 7, p99: 9, hits: 1, misses: 1 })], clock, redisA);
    a.sample();
    clock.now += 30_000; // next interval: the first is folded and written
    a.sample();
    const key = `${keyPrefix}dashboard:history:2000010000`;
    let stored: string | null = null;
    for (let i = 0; i < 50 && stored === null; i++) {
      stored = String((await redisA.run((c) => c.get(key))) ?? '') || null;
      if (stored === null) await new Promise((r) => setTimeout(r, 20));
    }
    expect(JSON.parse(stored as string)).toEqual(a.report().coarse.points[0]);
    const ttl = await redisA.run((c) => c.pTTL(key));
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000); // coarseStep × coarsePoints

    // "Restarted": a new instance with its own connection, nothing in memory.
    const redisB = createSharedRedis({ url, keyPrefix, logger: silentLogger, commandTimeout: 5000 });
    cleanups.push(() => redisB.close());
    const b = history([snapshotWith({ rps: 1, p99: 1 })], clock, redisB);
    b.start();
    cleanups.push(() => b.close());
    await b.loaded;
    expect(b.report().coarse.points).toEqual(a.report().coarse.points);
    expect(b.report().fine.points).toEqual([]);
  });
});

describe('GET /api/history', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('answers both tiers, and samples on its fine step', async () => {
    const built = buildApp({ leakWatch: false, history: { fineStep: 200, finePoints: 5, coarseStep: 1000 } });
    cleanups.push(() => built.board.close());
    server = await listen(http.createServer(built.app));
    let report: HistoryReport | undefined;
    for (let i = 0; i < 100; i++) {
      const res = await request(`${server.url}/dashboard/api/history`);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      report = res.json<HistoryReport>();
      if (report.fine.points.length >= 2) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(report?.fine.stepMs).toBe(200);
    expect(report?.fine.capacity).toBe(5);
    expect(report?.coarse.stepMs).toBe(1000);
    expect(report?.coarse.capacity).toBe(288);
    expect(report?.fine.points.length).toBeGreaterThanOrEqual(2);
    const [first, second] = report?.fine.points ?? [];
    expect((second as HistoryPoint).at - (first as HistoryPoint).at).toBeGreaterThanOrEqual(200);
    expect((second as HistoryPoint).at % 200).toBe(0);
  });

  it('history: false → 404 problem+json', async () => {
    const built = buildApp({ leakWatch: false, history: false });
    cleanups.push(() => built.board.close());
    server = await listen(http.createServer(built.app));
    const res = await request(`${server.url}/dashboard/api/history`);
    expect(res.status).toBe(404);
    expect(res.json<{ type: string }>().type).toBe('urn:perfstack:problem:not-found');
  });

  it.each([
    [{ fineStep: 10 }, RangeError, /history\.fineStep/],
    [{ fineStep: '10s', coarseStep: '15s' }, RangeError, /history\.coarseStep/],
    [{ finePoints: 0 }, RangeError, /history\.finePoints/],
    [{ coarsePoints: 1.5 }, TypeError, /history\.coarsePoints/],
    [{ span: '1d' }, TypeError, /span/],
  ])('rejects history %j', (value, type, message) => {
    const build = () => dashboard({ sources: fakeSources(), leakWatch: false, history: value as never });
    expect(build).toThrow(type);
    expect(build).toThrow(message);
  });
});
