/**
 * Profiling on demand over real HTTP: a CPU profile names the test app's hot function, a
 * second concurrent operation is refused, heap sampling and heap snapshots work and are
 * refused when memory is tight, and everything sits behind access control and CSRF.
 */
import type { Server } from 'node:http';
import http from 'node:http';
import { type DashboardOptions, dashboard } from '@perfstack/dashboard';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestResponse, type TestServer } from '../../../test/helpers/http.js';
import { type CpuProfile, summarizeCpuProfile } from '../src/profile/cpu.js';
import { checkHeadroom } from '../src/profile/heap.js';
import { memoryLogger } from './fakes.js';

/** The deliberately hot function: pure CPU, named so the profile can be checked for it. */
function burnCpuForProfileTest(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) x = (x * 31 + i) % 1_000_003;
  }
  return x;
}

let server: TestServer | undefined;
let board: ReturnType<typeof dashboard> | undefined;

afterEach(async () => {
  await board?.close();
  await server?.close();
  board = undefined;
  server = undefined;
});

async function start(options: DashboardOptions = {}): Promise<{ url: string; token: string }> {
  board = dashboard({ logger: memoryLogger(), leakWatch: false, ...options });
  const app = express();
  app.use('/dashboard', board);
  app.get('/hot', (_req, res) => {
    res.json({ x: burnCpuForProfileTest(20) });
  });
  server = await listen(http.createServer(app) as Server);
  const page = await request(
    `${server.url}/dashboard/`,
    options.auth ? { headers: { authorization: 'Bearer t0ken-t0ken-t0ken' } } : {},
  );
  const token = /name="csrf-token" content="([^"]+)"/.exec(page.text)?.[1] ?? '';
  return { url: server.url, token };
}

function post(url: string, token: string, extra: Record<string, string> = {}, body = '{}'): Promise<TestResponse> {
  return request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': token, ...extra },
    body,
    timeout: 30_000,
  });
}

/** Keeps the hot route busy until `until` settles. */
async function drive(url: string, until: Promise<unknown>): Promise<number> {
  let done = false;
  until.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  let count = 0;
  while (!done) {
    await request(`${url}/hot`);
    count++;
  }
  return count;
}

describe('CPU profile', () => {
  it('returns a .cpuprofile that names the hot function among the top entries, and keeps its summary', async () => {
    const { url, token } = await start();
    const pending = post(`${url}/dashboard/api/profile/cpu?seconds=1`, token);
    const driven = await drive(url, pending);
    const res = await pending;
    expect(driven).toBeGreaterThan(5);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['content-disposition']).toMatch(
      /^attachment; filename="cpu-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.cpuprofile"$/,
    );
    const profile = res.json<CpuProfile>();
    // Exactly V8's Profiler.Profile: what DevTools and speedscope load.
    expect(Object.keys(profile).sort()).toEqual(['endTime', 'nodes', 'samples', 'startTime', 'timeDeltas']);
    expect(profile.nodes[0]?.callFrame.functionName).toBe('(root)');
    expect(profile.samples!.length).toBeGreaterThan(100);
    expect(profile.timeDeltas!.length).toBe(profile.samples!.length);
    expect(profile.endTime - profile.startTime).toBeGreaterThan(900_000);
    const ids = new Set(profile.nodes.map((n) => n.id));
    expect(profile.samples!.every((id) => ids.has(id))).toBe(true);

    const summary = summarizeCpuProfile(profile, { at: 0, seconds: 1, samplingIntervalUs: 1000, aborted: false });
    const names = summary.top.slice(0, 5).map((f) => f.functionName);
    expect(names).toContain('burnCpuForProfileTest');
    const hot = summary.top.find((f) => f.functionName === 'burnCpuForProfileTest')!;
    expect(hot.url).toMatch(/profile\.test\.ts$/);
    expect(hot.selfShare).toBeGreaterThan(0.1);

    // The page's copy: the same summary, kept in memory.
    const last = (await request(`${url}/dashboard/api/profile`)).json<{
      running: null;
      cpu: { top: { functionName: string }[]; flame: { n: string; c: unknown[] }; sampleCount: number };
    }>();
    expect(last.running).toBeNull();
    expect(last.cpu.sampleCount).toBe(profile.samples!.length);
    expect(last.cpu.top.slice(0, 5).map((f) => f.functionName)).toContain('burnCpuForProfileTest');
    expect(last.cpu.flame.n).toBe('(root)');
    expect(JSON.stringify(last.cpu.flame)).toContain('"n":"burnCpuForProfileTest"');
  });

  it('refuses a second concurrent operation with 429 problem+json, then runs again once free', async () => {
    const { url, token } = await start();
    const first = post(`${url}/dashboard/api/profile/cpu?seconds=2&format=summary`, token);
    await new Promise((r) => setTimeout(r, 200));
    for (const path of ['cpu?seconds=1', 'heap-sampling?seconds=1', 'heap-snapshot']) {
      const second = await post(`${url}/dashboard/api/profile/${path}`, token);
      expect(second.status).toBe(429);
      expect(second.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(second.headers['retry-after'])).toBeLessThanOrEqual(2);
      expect(second.json()).toMatchObject({
        status: 429,
        code: 'RATE_LIMITED',
        reason: 'profiler-busy',
        running: 'cpu',
      });
    }
    const status = (await request(`${url}/dashboard/api/profile`)).json<{ running: string }>();
    expect(status.running).toBe('cpu');
    expect((await first).status).toBe(200);
    const again = await post(`${url}/dashboard/api/profile/cpu?seconds=1&format=summary`, token);
    expect(again.status).toBe(200);
  });

  it('the lock is shared by every dashboard in the process', async () => {
    const { url, token } = await start();
    const other = dashboard({ logger: memoryLogger(), leakWatch: false, basePath: '/other' });
    const otherServer = await listen((req, res) => other(req, res, () => res.end()));
    try {
      const page = await request(`${otherServer.url}/other/`);
      const otherToken = /name="csrf-token" content="([^"]+)"/.exec(page.text)?.[1] ?? '';
      const first = post(`${url}/dashboard/api/profile/cpu?seconds=1&format=summary`, token);
      await new Promise((r) => setTimeout(r, 200));
      const second = await post(`${otherServer.url}/other/api/profile/cpu?seconds=1`, otherToken);
      expect(second.status).toBe(429);
      expect((await first).status).toBe(200);
    } finally {
      await other.close();
      await otherServer.close();
    }
  });

  it('ends the recording early when the client goes away, and releases the lock', async () => {
    const { url, token } = await start();
    const req = http.request(`${url}/dashboard/api/profile/cpu?seconds=30&format=summary`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': token },
      agent: false,
    });
    req.on('error', () => {});
    req.end('{}');
    await new Promise((r) => setTimeout(r, 300));
    req.destroy();
    let last = { running: 'cpu' as string | null, cpu: null as null | { aborted: boolean } };
    for (let i = 0; i < 50 && last.running !== null; i++) {
      await new Promise((r) => setTimeout(r, 100));
      last = (await request(`${url}/dashboard/api/profile`)).json();
    }
    expect(last.running).toBeNull();
    expect(last.cpu?.aborted).toBe(true);
  });

  it.each([
    ['seconds=0', '"seconds" must be an integer from 1 to 60.'],
    ['seconds=61', '"seconds" must be an integer from 1 to 60.'],
    ['seconds=1.5', '"seconds" must be an integer from 1 to 60.'],
    ['seconds=abc', '"seconds" must be an integer from 1 to 60.'],
    ['seconds=', '"seconds" must be an integer from 1 to 60.'],
    ['seconds=1&format=pprof', '"format" must be one of cpuprofile, summary.'],
  ])('400 for ?%s', async (query, detail) => {
    const { url, token } = await start();
    const res = await post(`${url}/dashboard/api/profile/cpu?${query}`, token);
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ code: 'BAD_REQUEST', detail });
  });

  it('400 for a body with members; settings go in the query', async () => {
    const { url, token } = await start();
    const res = await post(`${url}/dashboard/api/profile/cpu?seconds=1`, token, {}, '{"seconds":5}');
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ code: 'BAD_REQUEST' });
  });

  it('honours maxSeconds and defaultSeconds; format=summary returns the summary', async () => {
    const { url, token } = await start({ profiling: { maxSeconds: 2, defaultSeconds: 1 } });
    const res = await post(`${url}/dashboard/api/profile/cpu?seconds=3`, token);
    expect(res.json()).toMatchObject({ status: 400, detail: '"seconds" must be an integer from 1 to 2.' });
    // format=summary: the JSON summary instead of the file.
    const ok = await post(`${url}/dashboard/api/profile/cpu?format=summary`, token);
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(ok.headers['content-disposition']).toBeUndefined();
    expect(ok.json()).toMatchObject({ kind: 'cpu', seconds: 1, samplingIntervalUs: 1000, aborted: false });
    expect(Array.isArray(ok.json<{ top: unknown }>().top)).toBe(true);
  });
});

describe('access control and CSRF on the profiling routes', () => {
  const paths = ['cpu?seconds=1', 'heap-sampling?seconds=1', 'heap-snapshot'];

  it.each(paths)('%s: 403 without the token, cross-site, or as a form; 405 for GET', async (path) => {
    const { url, token } = await start();
    const target = `${url}/dashboard/api/profile/${path}`;
    const noToken = await request(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(noToken.status).toBe(403);
    expect(noToken.json()).toMatchObject({ code: 'FORBIDDEN', reason: 'csrf' });
    const crossSite = await post(target, token, { 'sec-fetch-site': 'cross-site' });
    expect(crossSite.status).toBe(403);
    const otherOrigin = await post(target, token, { origin: 'http://evil.example' });
    expect(otherOrigin.status).toBe(403);
    const form = await post(target, token, { 'content-type': 'text/plain' });
    expect(form.status).toBe(403);
    const get = await request(target);
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    // Nothing ran: the lock is free and no summary was kept.
    expect((await request(`${url}/dashboard/api/profile`)).json()).toMatchObject({ running: null, cpu: null });
  });

  it('401 without credentials when auth is configured (before CSRF, before anything runs)', async () => {
    const { url, token } = await start({ auth: { token: 't0ken-t0ken-t0ken' } });
    expect(token).not.toBe('');
    const res = await post(`${url}/dashboard/api/profile/cpu?seconds=1`, token);
    expect(res.status).toBe(401);
    const report = await request(`${url}/dashboard/api/report`);
    expect(report.status).toBe(401);
    const leaks = await request(`${url}/dashboard/api/leaks`);
    expect(leaks.status).toBe(401);
    const ok = await post(`${url}/dashboard/api/profile/cpu?seconds=1&format=summary`, token, {
      authorization: 'Bearer t0ken-t0ken-t0ken',
    });
    expect(ok.status).toBe(200);
  });

  it('profiling: false turns the routes off (404)', async () => {
    const { url, token } = await start({ profiling: false });
    expect((await post(`${url}/dashboard/api/profile/cpu?seconds=1`, token)).status).toBe(404);
    expect((await post(`${url}/dashboard/api/profile/heap-snapshot`, token)).status).toBe(404);
    expect((await request(`${url}/dashboard/api/profile`)).status).toBe(404);
  });
});

describe('heap', () => {
  it('heap sampling returns the top allocation sites, and format=heapprofile the file', async () => {
    const { url, token } = await start();
    const retained: number[][] = [];
    const allocate = setInterval(() => {
      for (let i = 0; i < 50; i++) retained.push(new Array(1000).fill(i));
    }, 10);
    try {
      const res = await post(`${url}/dashboard/api/profile/heap-sampling?seconds=1`, token);
      expect(res.status).toBe(200);
      const summary = res.json<{
        kind: string;
        totalBytes: number;
        top: { functionName: string; selfBytes: number; share: number }[];
      }>();
      expect(summary.kind).toBe('heap-sampling');
      expect(summary.totalBytes).toBeGreaterThan(0);
      expect(summary.top.length).toBeGreaterThan(0);
      expect(summary.top[0]!.selfBytes).toBeGreaterThan(0);
      const file = await post(`${url}/dashboard/api/profile/heap-sampling?seconds=1&format=heapprofile`, token);
      expect(file.status).toBe(200);
      expect(file.headers['content-disposition']).toMatch(/^attachment; filename="heap-.*\.heapprofile"$/);
      expect(file.json<{ head: { callFrame: unknown; children: unknown[] } }>().head.children.length).toBeGreaterThan(
        0,
      );
    } finally {
      clearInterval(allocate);
      retained.length = 0;
    }
  });

  it('streams a .heapsnapshot (chunked, parsable)', async () => {
    const { url, token } = await start();
    const res = await post(`${url}/dashboard/api/profile/heap-snapshot`, token);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="heap-.*\.heapsnapshot"$/);
    expect(res.text.startsWith('{"snapshot":{"meta":')).toBe(true);
    const snapshot = JSON.parse(res.text) as { snapshot: { node_count: number }; nodes: number[]; strings: string[] };
    expect(snapshot.snapshot.node_count).toBeGreaterThan(1000);
    expect(snapshot.strings).toContain('burnCpuForProfileTest');
  });

  it('refuses heap operations with 503 OVERLOADED (memory-tight) when memory is too tight', async () => {
    const { url, token } = await start({ profiling: { maxHeapShare: 0.05, snapshotCostFactor: 10 } });
    const res = await post(`${url}/dashboard/api/profile/heap-snapshot`, token);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('30');
    const body = res.json<Record<string, unknown>>();
    expect(body).toMatchObject({
      code: 'OVERLOADED',
      reason: 'memory-tight',
      operation: 'heap-snapshot',
      maxHeapShare: 0.05,
    });
    expect(body.detail).toMatch(/^heap-snapshot refused: heap used .* over profiling\.maxHeapShare \(5%\)/);
    // Nothing was taken: the lock is free.
    expect((await request(`${url}/dashboard/api/profile`)).json()).toMatchObject({ running: null });
  });

  it('checkHeadroom: the heap-share rule and the system-memory rule', () => {
    const MB = 1024 * 1024;
    const limits = { maxHeapShare: 0.9, snapshotCostFactor: 2 };
    expect(
      checkHeadroom('heap-snapshot', limits, {
        heapUsedBytes: 100 * MB,
        heapLimitBytes: 4096 * MB,
        availableBytes: 8192 * MB,
      }),
    ).toMatchObject({ estimatedBytes: 200 * MB });
    // 1300 + 2600 = 3900 MB of a 4096 MB limit: 95% > 90%.
    expect(() =>
      checkHeadroom('heap-snapshot', limits, {
        heapUsedBytes: 1300 * MB,
        heapLimitBytes: 4096 * MB,
        availableBytes: 8192 * MB,
      }),
    ).toThrow(
      /heap-snapshot refused: heap used 1300\.0 MB \+ estimated cost 2600\.0 MB is 95% of the 4096\.0 MB heap limit/,
    );
    // Sampling costs little: the same heap is fine for it.
    expect(() =>
      checkHeadroom('heap-sampling', limits, {
        heapUsedBytes: 1300 * MB,
        heapLimitBytes: 4096 * MB,
        availableBytes: 8192 * MB,
      }),
    ).not.toThrow();
    expect(() =>
      checkHeadroom('heap-snapshot', limits, {
        heapUsedBytes: 100 * MB,
        heapLimitBytes: 4096 * MB,
        availableBytes: 150 * MB,
      }),
    ).toThrow(/exceeds the 150\.0 MB of memory the system has left/);
  });
});

describe('summarizeCpuProfile', () => {
  const frame = (functionName: string, lineNumber = 0) => ({
    functionName,
    scriptId: '1',
    url: 'file:///app.js',
    lineNumber,
    columnNumber: 0,
  });
  // (root) → main → [hot, helper → hot]; `hot` appears twice in the tree (same function).
  const profile: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2] },
      { id: 2, callFrame: frame('main', 1), children: [3, 4] },
      { id: 3, callFrame: frame('hot', 10), children: [] },
      { id: 4, callFrame: frame('helper', 20), children: [5] },
      { id: 5, callFrame: frame('hot', 10), children: [] },
    ],
    startTime: 1000,
    // Sample i lasts until sample i+1; the last one until endTime.
    samples: [3, 3, 5, 2, 4],
    timeDeltas: [0, 1000, 2000, 3000, 500],
    endTime: 1000 + 6500 + 1500,
  };

  it('self time = sample durations per node, aggregated by function + url + line', () => {
    const s = summarizeCpuProfile(profile, { at: 1, seconds: 1, samplingIntervalUs: 1000, aborted: false });
    // hot: 1000 (id3) + 2000 (id3) + 3000 (id5) = 6 ms; main 0.5 ms; helper 1.5 ms.
    expect(s.top.map((f) => [f.functionName, f.line, f.selfMs, f.totalMs])).toEqual([
      ['hot', 11, 6, 6],
      ['helper', 21, 1.5, 4.5],
      ['main', 2, 0.5, 8],
    ]);
    expect(s.top[0]!.selfShare).toBe(0.75);
    expect(s.durationMs).toBe(8);
    expect(s.flame).toEqual({
      n: '(root)',
      u: 'file:///app.js',
      l: 1,
      s: 0,
      t: 8,
      c: [
        {
          n: 'main',
          u: 'file:///app.js',
          l: 2,
          s: 0.5,
          t: 8,
          c: [
            // Children by total time, largest first.
            {
              n: 'helper',
              u: 'file:///app.js',
              l: 21,
              s: 1.5,
              t: 4.5,
              c: [{ n: 'hot', u: 'file:///app.js', l: 11, s: 3, t: 3, c: [] }],
            },
            { n: 'hot', u: 'file:///app.js', l: 11, s: 3, t: 3, c: [] },
          ],
        },
      ],
    });
  });
});
