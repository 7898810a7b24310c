/**
 * The seed documents' environment variables on the preset (PERFORMANCE_CACHE_ENABLED,
 * PERFORMANCE_MONITORING_ENABLED, DASHBOARD_ENABLED, MEMORY_CACHE_SIZE_MB, MONITORING_PORT,
 * MONITORING_HOST) and the monitoring port, over real HTTP. Each variable is passed through
 * the preset's `env` option, so no test touches `process.env`.
 */
import { randomBytes } from 'node:crypto';
import express from 'express';
import { ENV_NOT_READ, ENV_VARIABLES, type PerformanceStack, performanceStack } from 'perfstack';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../helpers/http.js';

const quiet = { destination: { write() {} } };
const log = { warn() {}, error() {} };

let server: TestServer | undefined;
let stack: PerformanceStack | undefined;
afterEach(async () => {
  await server?.close();
  await stack?.close();
  server = undefined;
  stack = undefined;
});

/** An Express app behind the preset built with `env`; mounts the endpoints unless told not to. */
async function start(env: Record<string, string>, { mount = true } = {}) {
  stack = performanceStack({ env, logger: quiet, log, redis: false });
  const app = express();
  app.use(stack);
  if (mount) {
    app.use('/dashboard', stack.dashboard());
    app.get('/metrics', stack.metrics());
    app.get('/health', stack.health());
  }
  app.get('/page', (_req, res) => {
    res.set('Cache-Control', 'max-age=60').json({ ok: true });
  });
  app.get('/big/:n', (_req, res) => {
    // Random bytes: compression cannot shrink the entry under the bound.
    res
      .set('Cache-Control', 'max-age=60')
      .type('text/plain')
      .send(randomBytes(300 * 1024).toString('base64'));
  });
  server = await listen(app);
  return server.url;
}

/** The cache's bytes once stores (compressed in the background) have stopped changing them. */
async function settledBytes(): Promise<number> {
  let last = -1;
  let same = 0;
  for (let i = 0; i < 100 && same < 3; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const bytes = stack?.cache.stats().bytes ?? -1;
    same = bytes === last ? same + 1 : 0;
    last = bytes;
  }
  return last;
}

describe('seed environment variables', () => {
  it('every variable is in the documented table, REDIS_POOL_SIZE in the not-read list with its reason', () => {
    const names = ENV_VARIABLES.map((v) => v.name);
    for (const name of [
      'PERFORMANCE_CACHE_ENABLED',
      'PERFORMANCE_MONITORING_ENABLED',
      'DASHBOARD_ENABLED',
      'MEMORY_CACHE_SIZE_MB',
      'MONITORING_PORT',
      'MONITORING_HOST',
    ]) {
      expect(names).toContain(name);
    }
    expect(ENV_NOT_READ.map((v) => v.name)).toEqual(['REDIS_POOL_SIZE']);
  });

  it.each([
    ['false', false],
    ['0', false],
    ['OFF', false],
    ['no', false],
    ['true', true],
    ['1', true],
    ['Yes', true],
  ])('PERFORMANCE_CACHE_ENABLED=%s → cache on: %s', async (value, on) => {
    const url = await start({ PERFORMANCE_CACHE_ENABLED: value });
    expect(stack?.layers.cache !== undefined).toBe(on);
    await request(`${url}/page`);
    const second = await request(`${url}/page`);
    expect(second.status).toBe(200);
    expect(second.headers['x-cache']).toBe(on ? 'HIT' : undefined);
  });

  it('PERFORMANCE_MONITORING_ENABLED=false turns the timing layer off (no Server-Timing); other layers stay', async () => {
    const url = await start({ PERFORMANCE_MONITORING_ENABLED: 'false' });
    expect(stack?.layers.timing).toBeUndefined();
    const res = await request(`${url}/page`);
    expect(res.status).toBe(200);
    // Only the cache's own entry is left: timing's app and total durations are gone.
    expect(res.headers['server-timing']).toMatch(/^cache;dur=[\d.]+;desc=miss$/);
    expect(res.headers['x-cache']).toBe('MISS');
    expect(res.headers['ratelimit-policy']).toBeDefined();
    expect((await request(`${url}/metrics`)).text).not.toContain('http_request_duration_seconds');
    await server?.close();
    await stack?.close();
    const on = await start({});
    expect((await request(`${on}/page`)).headers['server-timing']).toMatch(
      /^app;dur=[\d.]+, cache;dur=[\d.]+;desc=miss, total;dur=[\d.]+$/,
    );
  });

  it('DASHBOARD_ENABLED=false: /dashboard is the app’s 404 and an ordinary (rate-limited) request; /metrics stays', async () => {
    const url = await start({ DASHBOARD_ENABLED: 'false' });
    const page = await request(`${url}/dashboard/`);
    expect(page.status).toBe(404);
    expect(page.text).toContain('Cannot GET /dashboard/');
    expect(page.headers['ratelimit-policy']).toBeDefined();
    const report = await request(`${url}/dashboard/api/report`);
    expect(report.status).toBe(404);
    const metrics = await request(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers['ratelimit-policy']).toBeUndefined();
    // The data stays readable in code.
    expect(stack?.dashboard().report().version).toBe(1);
  });

  it('MEMORY_CACHE_SIZE_MB bounds the cache’s memory; without it the default 64 MiB holds more', async () => {
    const bounded = await start({ MEMORY_CACHE_SIZE_MB: '1' });
    for (let i = 0; i < 6; i++) expect((await request(`${bounded}/big/${i}`)).status).toBe(200);
    const boundedBytes = await settledBytes();
    expect(boundedBytes).toBeGreaterThan(0);
    expect(boundedBytes).toBeLessThanOrEqual(1024 * 1024);
    await server?.close();
    await stack?.close();
    const free = await start({});
    for (let i = 0; i < 6; i++) expect((await request(`${free}/big/${i}`)).status).toBe(200);
    expect(await settledBytes()).toBeGreaterThan(1024 * 1024);
  });

  it.each([
    [{ PERFORMANCE_CACHE_ENABLED: 'maybe' }, 'environment variable PERFORMANCE_CACHE_ENABLED must be true or false'],
    [{ DASHBOARD_ENABLED: '' + 'disabled' }, 'environment variable DASHBOARD_ENABLED must be true or false'],
    [{ MEMORY_CACHE_SIZE_MB: '0' }, 'environment variable MEMORY_CACHE_SIZE_MB must be a whole number from 1'],
    [{ MEMORY_CACHE_SIZE_MB: '1.5' }, 'environment variable MEMORY_CACHE_SIZE_MB must be a whole number from 1'],
    [{ MONITORING_PORT: '70000' }, 'environment variable MONITORING_PORT must be a whole number from 0 to 65535'],
    [{ MONITORING_PORT: 'http' }, 'environment variable MONITORING_PORT must be a whole number from 0 to 65535'],
  ])('a bad value %j is a TypeError at construction naming the variable', (env, message) => {
    expect(() => performanceStack({ env, logger: quiet, log, redis: false })).toThrow(TypeError);
    expect(() => performanceStack({ env, logger: quiet, log, redis: false })).toThrow(message);
  });
});

describe('the monitoring port', () => {
  it('MONITORING_PORT serves the dashboard, /metrics and /health there; nothing else; close() stops it', async () => {
    const url = await start({ MONITORING_PORT: '0' }, { mount: false });
    const address = await stack!.monitoring!.ready;
    expect(address.address).toBe('127.0.0.1');
    expect(stack!.monitoring!.address()?.port).toBe(address.port);
    const internal = `http://127.0.0.1:${address.port}`;
    await request(`${url}/page`);

    const metrics = await request(`${internal}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metrics.text).toContain(
      'http_request_duration_seconds_count{method="GET",route="/page",status_code="200"} 1',
    );
    const health = await request(`${internal}/health`);
    expect(health.status).toBe(200);
    expect(health.json<{ status: string }>().status).toBe('ok');
    const report = await request(`${internal}/dashboard/api/report?format=md`);
    expect(report.status).toBe(200);
    expect(report.headers['content-type']).toBe('text/markdown; charset=utf-8');
    expect(report.text.startsWith('# perfstack performance report')).toBe(true);
    const other = await request(`${internal}/page`);
    expect(other.status).toBe(404);
    expect(other.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(other.json<{ detail: string }>().detail).toBe(
      'The monitoring port serves only the dashboard, /metrics and /health.',
    );
    // The public port mounts nothing: the app's own 404.
    expect((await request(`${url}/metrics`)).status).toBe(404);

    await stack!.close();
    expect(stack!.monitoring!.address()).toBeUndefined();
    await expect(request(`${internal}/health`, { timeout: 2000 })).rejects.toThrow(/ECONNREFUSED/);
  });

  it('the `monitoring` option wins over the environment; `false` ignores MONITORING_PORT', async () => {
    await start({ MONITORING_PORT: '0' });
    expect(stack!.monitoring).toBeDefined();
    await stack!.close();
    stack = performanceStack({ env: { MONITORING_PORT: '0' }, monitoring: false, logger: quiet, log, redis: false });
    expect(stack.monitoring).toBeUndefined();
  });

  it('a port in use rejects `ready` without crashing the app', async () => {
    const taken = await listen((_req, res) => res.end());
    try {
      stack = performanceStack({ monitoring: { port: taken.port }, logger: quiet, log, redis: false });
      await expect(stack.monitoring!.ready).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await taken.close();
    }
  });

  it.each([
    [{ port: -1 }, 'monitoring.port must be a whole number from 0 to 65535'],
    [{ port: '9464' }, 'monitoring.port must be a whole number from 0 to 65535'],
    [{ port: 0, host: '' }, 'monitoring.host must be a non-empty address string'],
    [{ port: 0, path: '/x' }, 'path'],
  ])('rejects monitoring %j', (monitoring, message) => {
    expect(() => performanceStack({ monitoring: monitoring as never, logger: quiet, log, redis: false })).toThrow(
      TypeError,
    );
    expect(() => performanceStack({ monitoring: monitoring as never, logger: quiet, log, redis: false })).toThrow(
      message,
    );
  });
});
