/**
 * Defaults a team can ship: the preset's rate limit never refuses one ordinary user's
 * browsing (a page with 60 assets reloaded five times in a minute), yet is a limit; a
 * proxy in front without `trust proxy` is reported once, with a stable code, at the first
 * request that shows it; `protectServer()` cuts slow clients within its bounds. (Building a
 * stack is cheap too: that figure is `pnpm bench:construct`, timing stays out of the tests.)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { DEFAULT_RATE_LIMIT, type PerformanceStack, performanceStack, protectServer, SERVER_TIMEOUTS } from 'perfstack';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../helpers/http.js';

const silentLog = { destination: { write() {} } };

let server: TestServer | undefined;
let stack: PerformanceStack | undefined;
afterEach(async () => {
  await server?.close();
  await stack?.close();
  server = undefined;
  stack = undefined;
});

let site: string;
beforeAll(() => {
  site = mkdtempSync(join(tmpdir(), 'perfstack-site-'));
  mkdirSync(join(site, 'assets'));
  for (let i = 0; i < 60; i++) writeFileSync(join(site, 'assets', `a${i}.css`), `.c${i}{color:red}`);
  writeFileSync(join(site, 'index.html'), '<!doctype html><title>shop</title>');
});
afterAll(() => rmSync(site, { recursive: true, force: true }));

/** GETs `paths` over one keep-alive connection (as a browser would, but one at a time). */
async function browse(base: string, paths: readonly string[]): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 6 });
  try {
    return await Promise.all(paths.map(async (p) => (await request(`${base}${p}`, { agent })).status));
  } finally {
    agent.destroy();
  }
}

describe('the default rate limit', () => {
  it('lets one user load a page with 60 assets five times in a minute, every request answered', async () => {
    const warnings: string[] = [];
    stack = performanceStack({
      env: false,
      logger: silentLog,
      log: { warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) },
    });
    const app = express();
    app.use(stack);
    app.use(express.static(site));
    server = await listen(app);
    const page = ['/index.html', ...Array.from({ length: 60 }, (_, i) => `/assets/a${i}.css`)];
    const statuses: number[] = [];
    for (let reload = 0; reload < 5; reload++) statuses.push(...(await browse(server.url, page)));
    expect(statuses).toHaveLength(305);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const last = await request(`${server.url}/index.html`);
    expect(last.headers['ratelimit-policy']).toBe(
      `"${DEFAULT_RATE_LIMIT.limit}-in-1min"; q=${DEFAULT_RATE_LIMIT.limit}; w=60`,
    );
    // 305 used, this is the 306th: the limiter counted every one and refused none
    expect(last.headers.ratelimit).toMatch(
      new RegExp(`^"${DEFAULT_RATE_LIMIT.limit}-in-1min"; r=${DEFAULT_RATE_LIMIT.limit - 306}; t=\\d+$`),
    );
    expect(warnings).toEqual([]);
  });

  it('keeps a configured limit, and PERFSTACK_RATE_LIMIT', async () => {
    stack = performanceStack({ env: false, logger: silentLog, rateLimit: { limit: 5, window: '10s' } });
    const app = express();
    app.use(stack);
    app.get('/x', (_req, res) => {
      res.send('x');
    });
    server = await listen(app);
    expect((await request(`${server.url}/x`)).headers['ratelimit-policy']).toBe('"5-in-10sec"; q=5; w=10');
    await server.close();
    await stack.close();
    stack = performanceStack({ env: { PERFSTACK_RATE_LIMIT: '50' }, logger: silentLog });
    const app2 = express();
    app2.use(stack);
    app2.get('/x', (_req, res) => {
      res.send('x');
    });
    server = await listen(app2);
    expect((await request(`${server.url}/x`)).headers['ratelimit-policy']).toBe('"50-in-1min"; q=50; w=60');
  });
});

describe('a proxy in front without trust proxy', () => {
  async function startWith(configure?: (app: express.Express) => void) {
    const warnings: string[] = [];
    stack = performanceStack({
      env: false,
      logger: silentLog,
      log: { warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(`error: ${m}`) },
    });
    const app = express();
    configure?.(app);
    app.use(stack);
    app.get('/x', (_req, res) => {
      res.send('x');
    });
    server = await listen(app);
    return { warnings, url: server.url };
  }

  it('warns once, with ERR_ERL_UNEXPECTED_X_FORWARDED_FOR, at the first request carrying X-Forwarded-For', async () => {
    const { warnings, url } = await startWith();
    await request(`${url}/x`);
    expect(warnings).toEqual([]);
    for (let i = 0; i < 5; i++) {
      const res = await request(`${url}/x`, { headers: { 'x-forwarded-for': `203.0.113.${i}` } });
      expect(res.status).toBe(200);
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^ERR_ERL_UNEXPECTED_X_FORWARDED_FOR: The X-Forwarded-For header is set but the Express 'trust proxy' setting is false/,
    );
  });

  it('says nothing when trust proxy is set', async () => {
    const { warnings, url } = await startWith((app) => app.set('trust proxy', 1));
    for (let i = 0; i < 3; i++) await request(`${url}/x`, { headers: { 'x-forwarded-for': `203.0.113.${i}` } });
    expect(warnings).toEqual([]);
  });
});

/** A client that sends a request a few bytes at a time and never finishes; resolves when the server cuts it. */
function slowClient(port: number, head: string, trickle: string): Promise<{ afterMs: number; received: string }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    let received = '';
    const socket = net.connect(port, '127.0.0.1', () => socket.write(head));
    const timer = setInterval(() => {
      if (!socket.destroyed) socket.write(trickle);
    }, 100);
    socket.on('data', (d) => {
      received += d.toString();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ afterMs: Date.now() - started, received });
    });
    setTimeout(() => {
      clearInterval(timer);
      socket.destroy();
      reject(new Error('the slow client was never cut'));
    }, 20_000).unref();
  });
}

describe('protectServer()', () => {
  it('sets the documented bounds by default', () => {
    const server = protectServer(http.createServer());
    expect({
      headersTimeout: server.headersTimeout,
      requestTimeout: server.requestTimeout,
      keepAliveTimeout: server.keepAliveTimeout,
      checkInterval: (server as unknown as { connectionsCheckingInterval: number }).connectionsCheckingInterval,
    }).toEqual(SERVER_TIMEOUTS);
    expect(SERVER_TIMEOUTS).toEqual({
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      keepAliveTimeout: 5_000,
      checkInterval: 1_000,
    });
  });

  it.each([
    [{ headersTimeout: 0 }, RangeError],
    [{ headersTimeout: '40s', requestTimeout: '30s' }, RangeError],
    [{ keepAliveTimeout: 'soon' }, TypeError],
    [{ idleTimeout: 5 }, TypeError],
  ])('refuses %o', (options, error) => {
    expect(() => protectServer(http.createServer(), options as never)).toThrow(error);
  });

  function app() {
    stack = performanceStack({ env: false, logger: silentLog, log: { warn() {}, error() {} } });
    const a = express();
    a.use(stack);
    a.all('/x', (_req, res) => {
      res.send('x');
    });
    return a;
  }

  it('cuts a slowloris client (headers that never end) within headersTimeout + checkInterval, set before listen', async () => {
    const server = protectServer(http.createServer(app()), { headersTimeout: 1000, checkInterval: 200 });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as net.AddressInfo;
      const cut = await slowClient(port, 'GET /x HTTP/1.1\r\nHost: a\r\n', 'X-a: b\r\n');
      expect(cut.afterMs).toBeGreaterThanOrEqual(900);
      expect(cut.afterMs).toBeLessThan(1000 + 200 + 2000);
      expect(cut.received).toMatch(/^HTTP\/1\.1 408 Request Timeout/);
      // an ordinary client is served meanwhile
      expect((await request(`http://127.0.0.1:${port}/x`)).status).toBe(200);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('cuts a slow body within requestTimeout + checkInterval, on a server already listening', async () => {
    const server = http.createServer(app());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    protectServer(server, { headersTimeout: 500, requestTimeout: 1500, checkInterval: 200 });
    try {
      const { port } = server.address() as net.AddressInfo;
      const cut = await slowClient(port, 'POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n', 'a');
      expect(cut.afterMs).toBeGreaterThanOrEqual(1300);
      expect(cut.afterMs).toBeLessThan(1500 + 200 + 2000);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
