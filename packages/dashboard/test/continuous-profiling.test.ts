/**
 * Continuous profiling over real HTTP: periodic recordings on a tiny real schedule, the ring's
 * count and byte bounds, a period skipped while a manual profile holds the lock (and a manual
 * profile refused while a continuous one runs), the exact diff of two hand-built profiles, the
 * download, the options, and the report naming the hottest function of a slow route.
 */
import type { Server } from 'node:http';
import http from 'node:http';
import { setFlagsFromString } from 'node:v8';
import {
  type ContinuousProfilesReport,
  type CpuProfile,
  type CpuRecording,
  type DashboardOptions,
  dashboard,
  type ProfileDiff,
} from '@perfstack/dashboard';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';
import { fakeSources, memoryLogger } from './fakes.js';
import { syntheticProfile } from './synthetic-profile.js';

let server: TestServer | undefined;
let board: ReturnType<typeof dashboard> | undefined;

afterEach(async () => {
  await board?.close();
  await server?.close();
  board = undefined;
  server = undefined;
});

async function start(options: DashboardOptions = {}, app = express()): Promise<{ url: string; token: string }> {
  board = dashboard({ logger: memoryLogger(), leakWatch: false, history: false, ...options });
  app.use('/dashboard', board);
  server = await listen(http.createServer(app) as Server);
  const page = await request(`${server.url}/dashboard/`);
  const token = /name="csrf-token" content="([^"]+)"/.exec(page.text)?.[1] ?? '';
  return { url: server.url, token };
}

const listing = async (url: string) =>
  (await request(`${url}/dashboard/api/profiles`)).json<ContinuousProfilesReport>();

/** A recorder that returns the given profiles in turn (the last one again when they run out). */
function queue(...profiles: CpuProfile[]): (recording: CpuRecording) => Promise<CpuProfile> {
  let i = 0;
  return async () => profiles[Math.min(i++, profiles.length - 1)]!;
}

describe('continuous profiling: schedule and ring', () => {
  it('records every period on a real (tiny) schedule, keeps the newest N and drops the oldest', async () => {
    let n = 0;
    const record = async (r: CpuRecording) => {
      n++;
      expect(r.seconds).toBe(0.1);
      expect(r.samplingIntervalUs).toBe(500);
      return syntheticProfile([[`period${n}`, 5]]);
    };
    const { url } = await start({
      profiling: { continuous: { every: 200, duration: 100, samplingIntervalUs: 500, keep: 3, record } },
    });
    await waitFor(async () => (await listing(url)).recorded! >= 5, 10_000);
    await board!.close();
    const r = await listing(url);
    expect(r).toMatchObject({
      enabled: true,
      everyMs: 200,
      durationMs: 100,
      samplingIntervalUs: 500,
      dutyCycle: 0.5,
      keep: 3,
      skipped: 0,
      failed: 0,
      nextAt: null,
      running: false,
    });
    const recorded = r.recorded!;
    expect(recorded).toBe(n);
    // The newest three, newest first; the older ones were dropped.
    expect(r.profiles.map((p) => p.top[0]?.functionName)).toEqual([
      `period${recorded}`,
      `period${recorded - 1}`,
      `period${recorded - 2}`,
    ]);
    for (const p of r.profiles) {
      expect(p.id).toMatch(/^p-[0-9a-z]+-[0-9a-f]{6}$/);
      expect(p).toMatchObject({ hasProfile: true, sampleCount: 1, durationMs: 5, samplingIntervalUs: 500 });
    }
    // The timer is gone after close(): nothing more is recorded.
    expect(n).toBe(recorded);
  });

  it('keeps the ring under maxBytes, oldest dropped first; a profile alone over it keeps only its summary', async () => {
    const big = syntheticProfile(Array.from({ length: 40 }, (_, i) => [`fn${i}`, 1] as const));
    const { url } = await start({
      profiling: { continuous: { every: '1h', duration: '1s', keep: 10, maxBytes: 40_000, record: queue(big) } },
    });
    for (let i = 0; i < 6; i++) expect(await board!.profiles!.runOnce()).toBe('recorded');
    const r = await listing(url);
    expect(r.recorded).toBe(6);
    expect(r.bytes).toBeLessThanOrEqual(40_000);
    expect(r.profiles.length).toBeLessThan(6);
    expect(r.profiles.length).toBeGreaterThanOrEqual(1);
    // Each of them weighs the same: the ring holds as many as fit, the newest.
    const each = r.bytes! / r.profiles.length;
    expect(Math.floor(40_000 / each)).toBe(r.profiles.length);
    await board!.close();

    const { url: url2 } = await start({
      profiling: { continuous: { every: '1h', duration: '1s', maxBytes: 2000, record: queue(big) } },
    });
    await board!.profiles!.runOnce();
    const [only] = (await listing(url2)).profiles;
    expect(only).toMatchObject({ hasProfile: false });
    const summary = await request(`${url2}/dashboard/api/profiles/${only!.id}`);
    expect(summary.status).toBe(200);
    expect(summary.json<{ summary: { sampleCount: number } }>().summary.sampleCount).toBe(40);
    const file = await request(`${url2}/dashboard/api/profiles/${only!.id}?format=cpuprofile`);
    expect(file.status).toBe(404);
    expect(file.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(file.json<{ detail: string }>().detail).toContain('only its summary was kept');
  });

  it('skips a period while a manual CPU profile runs, and refuses a manual one while it records', async () => {
    let release: (() => void) | undefined;
    const record = (r: CpuRecording) =>
      new Promise<CpuProfile>((resolve) => {
        release = () => resolve(syntheticProfile([['slowRecording', 1]]));
        r.signal.addEventListener('abort', () => release?.());
      });
    const { url, token } = await start({
      profiling: { continuous: { every: '1h', duration: '2s', record } },
    });
    // A manual 1-second profile holds the process-wide lock: the period is skipped.
    const manual = request(`${url}/dashboard/api/profile/cpu?seconds=1&format=summary`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': token },
      body: '{}',
    });
    await waitFor(
      async () => (await request(`${url}/dashboard/api/profile`)).json<{ running: string }>().running === 'cpu',
    );
    expect(await board!.profiles!.runOnce()).toBe('skipped');
    expect((await manual).status).toBe(200);
    const r = await listing(url);
    expect(r).toMatchObject({ recorded: 0, skipped: 1, profiles: [] });
    expect(r.lastSkipped?.running).toBe('cpu');

    // While a continuous recording runs, a manual profile gets the usual 429.
    const period = board!.profiles!.runOnce();
    await waitFor(() => release !== undefined);
    const refused = await request(`${url}/dashboard/api/profile/cpu?seconds=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': token },
      body: '{}',
    });
    expect(refused.status).toBe(429);
    expect(refused.json()).toMatchObject({ code: 'RATE_LIMITED', reason: 'profiler-busy', running: 'continuous-cpu' });
    expect((await listing(url)).running).toBe(true);
    release!();
    expect(await period).toBe('recorded');
    expect((await listing(url)).profiles.map((p) => p.top[0]?.functionName)).toEqual(['slowRecording']);
  });

  it('is off by default: no timer, an empty listing, the routes under it 404', async () => {
    const { url } = await start();
    expect(board!.profiles).toBeUndefined();
    const res = await request(`${url}/dashboard/api/profiles`);
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ enabled: false, profiles: [] });
    expect((await request(`${url}/dashboard/api/profiles/diff?before=a&after=b`)).status).toBe(404);
  });
});

describe('continuous profiling: one profile, download, diff', () => {
  // Before: 1000 ms sampled; after: 2000 ms — the shares are taken of each profile's own total.
  const before = syntheticProfile([
    ['alpha', 600],
    ['beta', 300],
    ['gamma', 100],
  ]);
  const after = syntheticProfile([
    ['alpha', 400],
    ['beta', 600],
    ['delta', 1000],
  ]);

  it('diffs two profiles exactly: per function, share before and after, change, largest first', async () => {
    const { url } = await start({
      profiling: { continuous: { every: '1h', duration: '1s', record: queue(before, after) } },
    });
    await board!.profiles!.runOnce();
    await board!.profiles!.runOnce();
    const [newer, older] = (await listing(url)).profiles;
    const res = await request(`${url}/dashboard/api/profiles/diff?before=${older!.id}&after=${newer!.id}`);
    expect(res.status).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const diff = res.json<ProfileDiff & { instances: { before: string; after: string } }>();
    expect(diff.before).toEqual({ id: older!.id, at: older!.at, totalMs: 1000 });
    expect(diff.after).toEqual({ id: newer!.id, at: newer!.at, totalMs: 2000 });
    const at = (line: number) => ({ url: 'file:///srv/app.js', line });
    expect(diff.rows).toEqual([
      { functionName: 'delta', ...at(21), beforeMs: 0, afterMs: 1000, beforeShare: 0, afterShare: 0.5, delta: 0.5 },
      { functionName: 'alpha', ...at(1), beforeMs: 600, afterMs: 400, beforeShare: 0.6, afterShare: 0.2, delta: -0.4 },
      { functionName: 'gamma', ...at(21), beforeMs: 100, afterMs: 0, beforeShare: 0.1, afterShare: 0, delta: -0.1 },
      { functionName: 'beta', ...at(11), beforeMs: 300, afterMs: 600, beforeShare: 0.3, afterShare: 0.3, delta: 0 },
    ]);
    expect(diff.omitted).toBe(0);
    const limited = await request(`${url}/dashboard/api/profiles/diff?before=${older!.id}&after=${newer!.id}&limit=2`);
    expect(limited.json<ProfileDiff>().rows.map((r) => r.functionName)).toEqual(['delta', 'alpha']);
    expect(limited.json<ProfileDiff>().omitted).toBe(2);
  });

  it('serves one profile as a summary and as the .cpuprofile recorded', async () => {
    const { url } = await start({
      instanceId: 'web-7',
      profiling: { continuous: { every: '1h', duration: '1s', record: queue(before) } },
    });
    await board!.profiles!.runOnce();
    const [entry] = (await listing(url)).profiles;
    const summary = await request(`${url}/dashboard/api/profiles/${entry!.id}`);
    expect(summary.status).toBe(200);
    const body = summary.json<{
      id: string;
      instanceId: string;
      summary: { top: { functionName: string; selfMs: number }[] };
    }>();
    expect(body).toMatchObject({ id: entry!.id, instanceId: 'web-7' });
    expect(body.summary.top.map((f) => [f.functionName, f.selfMs])).toEqual([
      ['alpha', 600],
      ['beta', 300],
      ['gamma', 100],
    ]);
    expect(entry!.top.map((f) => f.functionName)).toEqual(['alpha', 'beta', 'gamma']);
    const file = await request(`${url}/dashboard/api/profiles/${entry!.id}?format=cpuprofile`);
    expect(file.status).toBe(200);
    expect(file.headers['content-type']).toBe('application/json');
    expect(file.headers['content-disposition']).toMatch(
      /^attachment; filename="cpu-web-7-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.cpuprofile"$/,
    );
    expect(file.json()).toEqual(before);
  });

  it.each([
    ['/api/profiles/diff', 400, 'BAD_REQUEST'],
    ['/api/profiles/diff?before=p-1-abcdef', 400, 'BAD_REQUEST'],
    ['/api/profiles/diff?before=nope&after=p-1-abcdef', 400, 'BAD_REQUEST'],
    ['/api/profiles/diff?before=p-1-abcdef&after=p-2-abcdef', 404, 'NOT_FOUND'],
    ['/api/profiles/p-1-abcdef', 404, 'NOT_FOUND'],
    ['/api/profiles/..%2f..%2fetc', 400, 'BAD_REQUEST'],
    ['/api/profiles/p-1-abcdef?format=zip', 400, 'BAD_REQUEST'],
  ])('GET %s → %i problem+json', async (path, status, code) => {
    const { url } = await start({ profiling: { continuous: { every: '1h', duration: '1s', record: queue(before) } } });
    const res = await request(`${url}/dashboard${path}`);
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.json()).toMatchObject({ status, code });
  });

  it('answers POST on the listing with 405 and Allow: GET, HEAD', async () => {
    const { url, token } = await start({
      profiling: { continuous: { every: '1h', duration: '1s', record: queue(before) } },
    });
    const res = await request(`${url}/dashboard/api/profiles`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': token },
      body: '{}',
    });
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
  });
});

describe('continuous profiling: options', () => {
  it.each([
    [{ every: '5s', duration: '5s' }, RangeError, /profiling\.continuous\.duration/],
    [{ every: 50 }, RangeError, /profiling\.continuous\.every/],
    [{ keep: 0 }, RangeError, /profiling\.continuous\.keep/],
    [{ samplingIntervalUs: 10 }, RangeError, /profiling\.continuous\.samplingIntervalUs/],
    [{ maxBytes: 'lots' }, TypeError, /profiling\.continuous\.maxBytes/],
    [{ record: 'v8' }, TypeError, /profiling\.continuous\.record/],
    [{ everyMinutes: 5 }, TypeError, /everyMinutes/],
  ])('refuses %o', (continuous, type, message) => {
    expect(() => dashboard({ profiling: { continuous: continuous as never } })).toThrow(type);
    expect(() => dashboard({ profiling: { continuous: continuous as never } })).toThrow(message);
  });

  it('defaults: 10 s every 5 minutes, the profiling sampling interval, 12 kept, 16 MB', async () => {
    const { url } = await start({ profiling: { samplingIntervalUs: 250, continuous: true } });
    expect(await listing(url)).toMatchObject({
      everyMs: 300_000,
      durationMs: 10_000,
      samplingIntervalUs: 250,
      dutyCycle: 0.033333,
      keep: 12,
      maxBytes: 16 * 1024 * 1024,
      recorded: 0,
      profiles: [],
    });
    const { nextAt } = await listing(url);
    expect(nextAt).toBeGreaterThan(Date.now() + 250_000);
  });
});

/**
 * Pure CPU in a function the report must name. Which frame V8's sampler charges is up to the
 * JIT: CI once read 94 % self time in the route's anonymous handler. Both ways that happens
 * are closed here (see `pinFrames`).
 */
function burnCpuInSlowRoute(ms: number): number {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) {
    for (let i = 0; i < 20_000; i++) x = (x * 31 + i) % 1_000_003;
  }
  return x;
}

/**
 * Runs V8 natives-syntax code (`%Name(fn)`): the syntax is parsed only while the flag is on.
 */
function natives(body: string, fn: unknown): void {
  setFlagsFromString('--allow-natives-syntax');
  try {
    new Function('fn', body)(fn);
  } finally {
    setFlagsFromString('--no-allow-natives-syntax');
  }
}

/**
 * Compiles the burn function with TurboFan before the test (samples taken while it still ran
 * in baseline code went to its caller on a loaded machine, where the optimizing compiler
 * lags), and tells V8 never to optimize the handler that calls it (an unoptimized caller
 * inlines nothing, so the burn keeps its own frame).
 */
function pinFrames(handler: unknown): void {
  natives('%PrepareFunctionForOptimization(fn)', burnCpuInSlowRoute);
  burnCpuInSlowRoute(1);
  natives('%OptimizeFunctionOnNextCall(fn)', burnCpuInSlowRoute);
  burnCpuInSlowRoute(1);
  natives('%NeverOptimizeFunction(fn)', handler);
}

describe('the report links slow routes to the hottest functions of the last profile', () => {
  it('names the function a slow route burns CPU in (real V8 profile, JSON and Markdown)', async () => {
    const sources = fakeSources();
    const app = express();
    const slowRoute: express.RequestHandler = (_req, res) => {
      const started = performance.now();
      const x = burnCpuInSlowRoute(40);
      res.json({ x });
      sources.timing.record({ method: 'GET', route: '/slow', status: 200, ms: performance.now() - started });
    };
    pinFrames(slowRoute);
    app.get('/slow', slowRoute);
    const { url } = await start(
      {
        sources,
        report: { latencyTargetMs: 10, minRequests: 5 },
        profiling: { continuous: { every: '1h', duration: '1s' } },
      },
      app,
    );
    // Without a profile: the slow route is found, but nothing is linked.
    for (let i = 0; i < 5; i++) await request(`${url}/slow`);
    type Report = {
      recommendations: {
        rule: string;
        route: string | null;
        finding: string;
        hotFunctions?: { functionName: string }[];
      }[];
    };
    const first = (await request(`${url}/dashboard/api/report`)).json<Report>();
    const slowBefore = first.recommendations.find((r) => r.rule === 'latency' && r.route === 'GET /slow');
    expect(slowBefore).toBeDefined();
    expect(slowBefore!.hotFunctions).toBeUndefined();

    // One continuous period (real V8 sampling) while the route is driven.
    const period = board!.profiles!.runOnce();
    let done = false;
    period.then(() => {
      done = true;
    });
    while (!done) await request(`${url}/slow`);
    expect(await period).toBe('recorded');

    const report = (await request(`${url}/dashboard/api/report`)).json<Report>();
    const slow = report.recommendations.find((r) => r.rule === 'latency' && r.route === 'GET /slow');
    expect(
      slow!.hotFunctions!.map((f) => f.functionName),
      JSON.stringify(slow!.hotFunctions),
    ).toContain('burnCpuInSlowRoute');
    expect(slow!.finding).toContain('Hottest functions in the last CPU profile');
    expect(slow!.finding).toContain('`burnCpuInSlowRoute`');
    const md = await request(`${url}/dashboard/api/report?format=md`);
    expect(md.text).toContain('burnCpuInSlowRoute');
  });
});
