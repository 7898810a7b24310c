import http from 'node:http';
import { toKoa } from '@perfstack/core';
import { type DashboardSnapshot, dashboard } from '@perfstack/dashboard';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { buildApp, HELMET_CSP } from './app.js';
import { fakeSources } from './fakes.js';

let server: TestServer | undefined;

/** GET with the path sent byte for byte (`new URL` would resolve the dot segments first). */
function rawGet(
  port: number,
  path: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; json(): unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          json: () => JSON.parse(Buffer.concat(chunks).toString()),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}
let closeBoard: (() => Promise<void>) | undefined;

afterEach(async () => {
  await closeBoard?.();
  await server?.close();
  server = undefined;
  closeBoard = undefined;
});

async function start(options: Parameters<typeof buildApp>[0] = {}) {
  const built = buildApp({ instanceId: 'test-1', ...options });
  server = await listen(http.createServer(built.app));
  closeBoard = () => built.board.close();
  return { ...built, url: server.url };
}

describe('page and assets', () => {
  it('serves the page with the CSRF meta tag, relative asset URLs and no inline script', async () => {
    const { url } = await start();
    const res = await request(`${url}/dashboard/`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    // The app's CSP (helmet's) is left as it is; the dashboard adds its own only when there is none.
    expect(res.headers['content-security-policy']).toBe(HELMET_CSP);
    expect(res.text).toMatch(/<meta name="csrf-token" content="[A-Za-z0-9_-]{43}">/);
    expect(res.text).toContain('<script src="assets/app.js" defer></script>');
    expect(res.text).toContain('<link rel="stylesheet" href="assets/app.css">');
    // No inline script, no inline handlers, no style attributes: works under script-src 'self'.
    expect(res.text.match(/<script\b[^>]*>/g)).toEqual([
      '<script src="assets/app.js" defer>',
      '<script src="assets/profiles.js" defer>',
      '<script src="assets/settings.js" defer>',
    ]);
    expect(res.text).not.toMatch(/\son[a-z]+=/i);
    expect(res.text).not.toMatch(/\sstyle=/i);
    expect(res.text).not.toMatch(/https?:\/\//);
  });

  it('redirects /dashboard to /dashboard/ so relative asset URLs resolve under the mount', async () => {
    const { url } = await start();
    const res = await request(`${url}/dashboard?x=1`);
    expect(res.status).toBe(302);
    expect(res.headers.location).toBe('/dashboard/?x=1');
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('sets its own strict CSP on the page when the app set none', async () => {
    const board = dashboard({ sources: fakeSources(), instanceId: 'x', basePath: '/dashboard' });
    closeBoard = () => board.close();
    server = await listen((req, res) => board(req, res, () => res.end('app')));
    const res = await request(`${server.url}/dashboard/`);
    expect(res.status).toBe(200);
    expect(res.headers['content-security-policy']).toBe(
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    expect(res.headers['referrer-policy']).toBe('no-referrer');
  });

  it.each([
    ['app.js', 'text/javascript; charset=utf-8'],
    ['profiles.js', 'text/javascript; charset=utf-8'],
    ['settings.js', 'text/javascript; charset=utf-8'],
    ['app.css', 'text/css; charset=utf-8'],
    ['icon.svg', 'image/svg+xml'],
  ])('serves assets/%s as %s, never cached', async (name, type) => {
    const { url } = await start();
    const res = await request(`${url}/dashboard/assets/${name}`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe(type);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(Number(res.headers['content-length'])).toBe(res.body.length);
  });

  it('keeps the page plus its assets under 100 KB', async () => {
    const { url } = await start();
    let total = 0;
    for (const path of [
      '/',
      '/assets/app.js',
      '/assets/profiles.js',
      '/assets/settings.js',
      '/assets/app.css',
      '/assets/icon.svg',
    ]) {
      const res = await request(`${url}/dashboard${path}`);
      expect(res.status).toBe(200);
      total += res.body.length;
    }
    expect(total).toBeGreaterThan(10_000);
    expect(total).toBeLessThan(100 * 1024);
  });

  it.each(['app.js', 'profiles.js', 'settings.js'])(
    'the script %s uses no eval, no innerHTML and no remote URL',
    async (name) => {
      const { url } = await start();
      const res = await request(`${url}/dashboard/assets/${name}`);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8');
      const js = res.text;
      expect(js).not.toMatch(/\beval\(|new Function|innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
      expect(js).not.toMatch(/https?:\/\//);
    },
  );

  it.each([
    '/dashboard/assets/../package.json',
    '/dashboard/assets/%2e%2e/package.json',
    '/dashboard/assets/%2E%2E%2Fpackage.json',
    '/dashboard/assets/..%2fpackage.json',
    '/dashboard/assets/..%5cpackage.json',
    '/dashboard/assets/..\\package.json',
    '/dashboard/assets/%2e%2e%2f%2e%2e%2f%2e%2e%2fpackage.json',
    '/dashboard/assets/%252e%252e%252fpackage.json',
    '/dashboard/assets//etc/passwd',
    '/dashboard/assets/./app.js',
    '/dashboard/assets/app.js%00',
    '/dashboard/assets/app.js/',
    '/dashboard/assets/index.html',
    '/dashboard/assets/',
    '/dashboard/../package.json',
    '/dashboard/assets/../../src/index.ts',
  ])('does not traverse: %s is a 404 problem', async (path) => {
    await start();
    const res = await rawGet(server!.port, path);
    expect(res.status).toBe(404);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({
      type: 'urn:perfstack:problem:not-found',
      title: 'Not Found',
      status: 404,
      detail: 'No such dashboard resource.',
      code: 'NOT_FOUND',
    });
  });

  it('answers 405 with Allow for the wrong method, and HEAD without a body', async () => {
    const { url } = await start();
    const put = await request(`${url}/dashboard/api/snapshot`, { method: 'POST' });
    expect(put.status).toBe(405);
    expect(put.headers.allow).toBe('GET, HEAD');
    const get = await request(`${url}/dashboard/api/breakers/reset`);
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    const head = await request(`${url}/dashboard/api/snapshot`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(head.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(head.headers['cache-control']).toBe('no-store');
  });
});

describe('GET /api/snapshot', () => {
  it('reports the layers as ARCHITECTURE.md lists them', async () => {
    const { url, sources } = await start();
    for (let i = 0; i < 10; i++) expect((await request(`${url}/api/items/${i % 4}`)).status).toBe(200);
    for (let i = 0; i < 4; i++) await request(`${url}/api/flaky`);
    await request(`${url}/upload`, { method: 'POST', body: 'x' });
    sources.rateLimit.blocked = 2;
    const res = await request(`${url}/dashboard/api/snapshot`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    const s = res.json<DashboardSnapshot>();
    expect(Object.keys(s).sort()).toEqual(
      [
        'version',
        'at',
        'instanceId',
        'sources',
        'requests',
        'latency',
        'windows',
        'routes',
        'cache',
        'data',
        'rateLimit',
        'breakers',
        'sizeLimit',
        'outbound',
        'process',
        'alerts',
        'health',
        'fleet',
        'sourceErrors',
      ].sort(),
    );
    expect(s.version).toBe(1);
    expect(s.instanceId).toBe('test-1');
    expect(s.sources).toEqual({
      timing: true,
      cache: true,
      data: false,
      rateLimit: true,
      circuitBreaker: true,
      sizeLimit: true,
      outbound: false,
      health: false,
    });
    expect(s.requests).toEqual({
      total: 14,
      inFlight: 0,
      rps: 14 / 60,
      errors: 4,
      errorRate: 4 / 14,
      statusClasses: { '2xx': 10, '5xx': 1 + 3 },
    });
    expect(Object.keys(s.latency).sort()).toEqual(['max', 'mean', 'p50', 'p95', 'p99']);
    expect(s.latency.p99).toBeGreaterThanOrEqual(120);
    expect(s.routes.map((r) => [r.method, r.route, r.count])).toEqual([
      ['GET', '/api/items/:id', 10],
      ['GET', '/api/flaky', 4],
    ]);
    expect(s.cache).toEqual({
      hits: 6,
      misses: 4,
      stale: 0,
      bypass: 0,
      evictions: 0,
      warmStarted: 0,
      entries: 4,
      bytes: 4000,
      hitRatio: 0.6,
    });
    expect(s.rateLimit).toEqual({
      allowed: 10,
      blocked: 2,
      storeErrors: 0,
      limits: [{ name: 'global', allowed: 10, blocked: 2 }],
    });
    expect(s.breakers).toEqual({
      list: [
        {
          name: 'GET /api/flaky',
          state: 'open',
          failures: 3,
          successes: 0,
          rejected: 0,
          timeouts: 0,
          openedAt: expect.any(Number),
        },
      ],
      open: 1,
      halfOpen: 0,
      overloaded: false,
      shed: 0,
    });
    expect(s.sizeLimit).toEqual({ rejected: { body: 1, url: 0, headers: 0 }, total: 1 });
    expect(Object.keys(s.process).sort()).toEqual(
      [
        'cpuPercent',
        'eventLoopDelayMs',
        'heapLimitBytes',
        'heapTotalBytes',
        'heapUsedBytes',
        'rssBytes',
        'uptimeSeconds',
      ].sort(),
    );
    expect(s.alerts).toEqual([
      expect.objectContaining({
        id: 'breaker-open:GET /api/flaky',
        rule: 'breaker-open',
        severity: 'critical',
        layer: 'circuit-breaker',
      }),
    ]);
    expect(s.alerts[0]!.recommendation).toMatch(/reset the breaker/);
    expect(s.health).toBeNull();
    expect(s.fleet).toBeNull();
    expect(s.sourceErrors).toEqual([]);
  });

  it('shows absent layers as null and samples the process itself without timing', async () => {
    const board = dashboard({ instanceId: 'bare', basePath: '/d' });
    closeBoard = () => board.close();
    server = await listen((req, res) => board(req, res, () => res.end()));
    const s = (await request(`${server.url}/d/api/snapshot`)).json<DashboardSnapshot>();
    expect(s.sources).toEqual({
      timing: false,
      cache: false,
      data: false,
      rateLimit: false,
      circuitBreaker: false,
      sizeLimit: false,
      outbound: false,
      health: false,
    });
    expect(s.requests).toEqual({ total: 0, inFlight: 0, rps: 0, errors: 0, errorRate: 0, statusClasses: {} });
    expect(s.cache).toBeNull();
    expect(s.rateLimit).toBeNull();
    expect(s.breakers).toBeNull();
    expect(s.sizeLimit).toBeNull();
    expect(s.routes).toEqual([]);
    expect(s.process.rssBytes).toBeGreaterThan(0);
    expect(s.process.heapLimitBytes).toBeGreaterThan(0);
  });

  it('a source that throws leaves its section null, names it, and is logged once', async () => {
    const lines: string[] = [];
    const logger = { warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) };
    const board = dashboard({
      instanceId: 'x',
      basePath: '/d',
      logger,
      sources: {
        cache: {
          stats: () => {
            throw new Error('cache gone');
          },
          invalidate: async () => 0,
        },
      },
    });
    closeBoard = () => board.close();
    server = await listen((req, res) => board(req, res, () => res.end()));
    const first = (await request(`${server.url}/d/api/snapshot`)).json<DashboardSnapshot>();
    await request(`${server.url}/d/api/snapshot`);
    expect(first.cache).toBeNull();
    expect(first.sourceErrors).toEqual(['cache']);
    expect(lines).toEqual(['DASHBOARD_SOURCE_CACHE: the cache source threw while building a snapshot']);
  });

  it('shows the health report from a healthHandler passed as a source', async () => {
    const { healthHandler } = await import('@perfstack/dashboard');
    const health = healthHandler({ checks: { redis: () => ({ status: 'degraded', detail: 'down' }) } });
    const board = dashboard({ instanceId: 'x', basePath: '/d', sources: { health } });
    closeBoard = () => board.close();
    server = await listen((req, res) => board(req, res, () => res.end()));
    const s = (await request(`${server.url}/d/api/snapshot`)).json<DashboardSnapshot>();
    expect(s.health).toEqual({ status: 'degraded', checks: { redis: { status: 'degraded', detail: 'down' } } });
  });
});

describe('mounting', () => {
  it('node:http with basePath: answers under it and passes everything else to next()', async () => {
    const board = dashboard({ sources: fakeSources(), instanceId: 'n', basePath: '/ops/dashboard/' });
    closeBoard = () => board.close();
    server = await listen((req, res) => board(req, res, () => res.end('app')));
    expect((await request(`${server.url}/ops/dashboard/api/snapshot`)).status).toBe(200);
    const page = await request(`${server.url}/ops/dashboard`);
    expect(page.status).toBe(302);
    expect(page.headers.location).toBe('/ops/dashboard/');
    expect((await request(`${server.url}/ops/dashboard/`)).status).toBe(200);
    const other = await request(`${server.url}/ops/dashboardx`);
    expect(other.text).toBe('app');
    expect((await request(`${server.url}/`)).text).toBe('app');
  });

  it('Koa through toKoa with basePath', async () => {
    const board = dashboard({ sources: fakeSources(), instanceId: 'k', basePath: '/dashboard' });
    closeBoard = () => board.close();
    const app = new Koa();
    app.use(toKoa(board));
    app.use((ctx) => {
      ctx.body = 'koa app';
    });
    server = await listen(http.createServer(app.callback()));
    const res = await request(`${server.url}/dashboard/api/snapshot`);
    expect(res.status).toBe(200);
    expect(res.json<{ instanceId: string }>().instanceId).toBe('k');
    expect((await request(`${server.url}/dashboard/`)).headers['content-type']).toBe('text/html; charset=utf-8');
    expect((await request(`${server.url}/other`)).text).toBe('koa app');
  });
});
