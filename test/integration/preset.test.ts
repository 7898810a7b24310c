import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type ShapeWarmer, shapeWarmerOf } from '@perfstack/core';
import express from 'express';
import { cache, DEFAULT_ORDER, ENV_VARIABLES, type PerformanceStack, performanceStack } from 'perfstack';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../helpers/http.js';
import { redisUrl } from '../helpers/redis.js';

const quiet = { warn() {}, error() {} };
const silentLog = { destination: { write() {} } as never };

let server: TestServer | undefined;
let stack: PerformanceStack | undefined;
afterEach(async () => {
  await server?.close();
  await stack?.close();
  server = undefined;
  stack = undefined;
});

describe('performanceStack() composition', () => {
  it('applies the layers in the documented order (locked)', () => {
    expect(DEFAULT_ORDER).toEqual([
      'timing',
      'cache',
      'sizeLimit',
      'logger',
      'helmet',
      'cors',
      'rateLimit',
      'circuitBreaker',
    ]);
    stack = performanceStack({ env: false, log: quiet, logger: silentLog });
    expect(stack.order).toEqual(DEFAULT_ORDER);
    expect(Object.keys(stack.layers).sort()).toEqual([
      'cache',
      'circuitBreaker',
      'logger',
      'rateLimit',
      'sizeLimit',
      'timing',
    ]);
  });

  it('shows the order in behaviour: a cache hit is served before the rate limiter and carries no RateLimit headers', async () => {
    stack = performanceStack({ env: false, log: quiet, logger: silentLog, rateLimit: { limit: 2, window: '1m' } });
    const app = express();
    app.use(stack);
    let calls = 0;
    app.get('/p', cache({ ttl: '1m' }), (_req, res) => {
      calls++;
      res.json({ calls });
    });
    app.get('/other', (_req, res) => {
      res.json({ ok: true });
    });
    server = await listen(app);
    const miss = await request(`${server.url}/p`);
    expect(miss.status).toBe(200);
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(miss.headers['ratelimit']).toBe('"2-in-1min"; r=1; t=60');
    const other = await request(`${server.url}/other`);
    expect(other.status).toBe(200);
    const limited = await request(`${server.url}/other`);
    expect(limited.status).toBe(429);
    expect(limited.json()).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
    // the hit is answered by layer 2, before layer 7 would refuse it
    const hit = await request(`${server.url}/p`);
    expect(hit.status).toBe(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.headers['ratelimit']).toBeUndefined();
    expect(hit.headers['ratelimit-policy']).toBeUndefined();
    expect(hit.json()).toEqual({ calls: 1 });
    // timing (layer 1) measured the hit; helmet's headers came from the stored response
    expect(hit.headers['server-timing']).toMatch(/^cache;dur=[\d.]+;desc=hit, total;dur=[\d.]+$/);
    expect(hit.headers['x-content-type-options']).toBe('nosniff');
    expect(hit.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(hit.headers['x-request-id']).not.toBe(miss.headers['x-request-id']);
    expect(calls).toBe(1);
  });

  it('an oversized body is refused by size-limit before a byte of it is read, and never reaches the handler', async () => {
    const lines: string[] = [];
    stack = performanceStack({
      env: false,
      log: quiet,
      sizeLimit: { limit: '1kb' },
      logger: { destination: { write: (line: string) => lines.push(line) } as never },
      rateLimit: { limit: 5, window: '1m' },
    });
    const app = express();
    app.use(stack);
    let reached = 0;
    app.post('/upload', express.json(), (_req, res) => {
      reached++;
      res.json({ ok: true });
    });
    server = await listen(app);
    const body = JSON.stringify({ data: 'x'.repeat(4096) });
    const res = await request(`${server.url}/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      body,
    });
    expect(res.status).toBe(413);
    expect(res.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', status: 413, limit: 1024 });
    expect(res.headers.connection).toBe('close');
    expect(reached).toBe(0);
    // a small body passes every layer
    const ok = await request(`${server.url}/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(ok.status).toBe(200);
    expect(reached).toBe(1);
  });

  it('turns layers off with false and keeps the rest', async () => {
    stack = performanceStack({ env: false, log: quiet, cache: false, logger: false, rateLimit: false, helmet: false });
    expect(Object.keys(stack.layers).sort()).toEqual(['circuitBreaker', 'sizeLimit', 'timing']);
    const app = express();
    app.use(stack);
    app.get('/x', (_req, res) => {
      res.json({ ok: true });
    });
    server = await listen(app);
    const res = await request(`${server.url}/x`);
    expect(res.status).toBe(200);
    expect(res.headers['x-cache']).toBeUndefined();
    expect(res.headers['ratelimit']).toBeUndefined();
    expect(res.headers['x-content-type-options']).toBeUndefined();
    expect(res.headers['server-timing']).toMatch(/^app;dur=[\d.]+, total;dur=[\d.]+$/);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(await stack.cache.invalidate({ tags: ['x'] })).toBe(0);
  });

  it.each([
    [{ nope: true }, 'perfstack: unknown option "nope" for performanceStack()'],
    [{ cache: 'yes' }, 'perfstack: option "cache" must be an options object or a boolean, got string'],
    [
      { order: ['cache', 'timing'] },
      'perfstack: option "order" must list each of timing, cache, sizeLimit, logger, helmet, cors, rateLimit, circuitBreaker exactly once',
    ],
    [
      { paths: { dashboard: 'dash' } },
      'perfstack: option "paths.dashboard" must be a path like "/dashboard", got dash',
    ],
    [{ cache: { ttl: 'soon' } }, /@perfstack\/cache: option "ttl"/],
    [{ rateLimit: { limit: -1 } }, /@perfstack\/rate-limit/],
    [{ sizeLimit: { limit: 'huge' } }, /@perfstack\/size-limit: option "limit"/],
  ])('rejects bad options: %j', (options, message) => {
    expect(() => performanceStack({ env: false, log: quiet, ...(options as object) })).toThrow(message);
  });

  it('catches app.use(performanceStack) without ()', () => {
    const app = express();
    app.use(performanceStack as never);
    expect(() =>
      (performanceStack as unknown as (...a: unknown[]) => void)({ method: 'GET', headers: {}, url: '/', socket: {} }),
    ).toThrow(
      'perfstack: performanceStack was passed a request object; call it first: app.use(performanceStack()) not app.use(performanceStack)',
    );
  });

  it('allows another order only on purpose, and applies it', async () => {
    const order = ['timing', 'sizeLimit', 'logger', 'helmet', 'cors', 'rateLimit', 'cache', 'circuitBreaker'] as const;
    stack = performanceStack({ env: false, log: quiet, logger: silentLog, order: [...order], rateLimit: { limit: 1 } });
    expect(stack.order).toEqual(order);
    const app = express();
    app.use(stack);
    app.get('/p', cache({ ttl: '1m' }), (_req, res) => {
      res.json({ ok: true });
    });
    server = await listen(app);
    expect((await request(`${server.url}/p`)).status).toBe(200);
    // the limiter now runs before the cache: a would-be hit is refused
    expect((await request(`${server.url}/p`)).status).toBe(429);
  });

  it('reads REDIS_URL and PERFSTACK_* only for options left unset', async () => {
    stack = performanceStack({
      log: quiet,
      logger: silentLog,
      env: { PERFSTACK_DISABLE: 'cache,logger', PERFSTACK_RATE_LIMIT: '7', PERFSTACK_RATE_LIMIT_WINDOW: '30s' },
    });
    expect(Object.keys(stack.layers).sort()).toEqual(['circuitBreaker', 'rateLimit', 'sizeLimit', 'timing']);
    expect(stack.redis).toBeUndefined();
    const app = express();
    app.use(stack);
    app.get('/x', (_req, res) => {
      res.end('ok');
    });
    server = await listen(app);
    expect((await request(`${server.url}/x`)).headers['ratelimit-policy']).toBe('"7-in-30sec"; q=7; w=30');
    await stack.close();
    stack = performanceStack({
      log: quiet,
      logger: silentLog,
      rateLimit: { limit: 3 },
      env: { PERFSTACK_RATE_LIMIT: '7' },
    });
    const app2 = express();
    app2.use(stack);
    app2.get('/x', (_req, res) => {
      res.end('ok');
    });
    await server.close();
    server = await listen(app2);
    expect((await request(`${server.url}/x`)).headers['ratelimit-policy']).toMatch(/^"3-in-/);
  });
});

describe('performanceStack() on Express: stable request shapes', () => {
  it("installs one shape warmer on the server, learns Express's and its own keys, and every answer stays exact", async () => {
    stack = performanceStack({ env: false, redis: false, log: quiet, logger: silentLog, cors: { origin: '*' } });
    const app = express();
    app.use(stack);
    app.get('/users/:id', cache({ ttl: '1m' }), (req, res) => {
      res.json({ id: req.params.id, query: req.query, route: req.route?.path, ip: req.ip });
    });
    server = await listen(app);
    for (let i = 0; i < 40; i++) {
      const res = await request(`${server.url}/users/${i % 5}?q=${i % 5}`);
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({
        id: String(i % 5),
        query: { q: String(i % 5) },
        route: '/users/:id',
        ip: '127.0.0.1',
      });
      expect(res.headers['x-cache']).toBe(i < 5 ? 'MISS' : 'HIT');
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.headers['ratelimit-policy']).toBe(i < 5 ? '"1000-in-1min"; q=1000; w=60' : undefined);
    }
    const raw = server.server;
    expect(raw.listenerCount('request')).toBe(2);
    const warmer = shapeWarmerOf(raw) as ShapeWarmer;
    expect(raw.listeners('request')[0]).toBe(warmer.listener);
    expect(warmer.request.keys).toEqual(
      expect.arrayContaining(['baseUrl', 'params', 'route', Symbol.for('perfstack.requestId')]),
    );
    expect(warmer.response.keys).toEqual(expect.arrayContaining(['locals', Symbol.for('perfstack.responseHooks')]));
    const missing = await request(`${server.url}/nowhere`);
    expect(missing.status).toBe(404);
  });
});

describe('environment variables', () => {
  it('documents every variable it reads in the README table', () => {
    const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    for (const { name } of ENV_VARIABLES) expect(readme).toMatch(new RegExp(`\\|\\s*\`${name}\`\\s*\\|`));
  });

  it('applies PERFSTACK_CORS_ORIGINS, PERFSTACK_BODY_LIMIT and PERFSTACK_DASHBOARD_TOKEN', async () => {
    stack = performanceStack({
      log: quiet,
      logger: silentLog,
      env: {
        PERFSTACK_CORS_ORIGINS: 'https://a.example, https://b.example',
        PERFSTACK_BODY_LIMIT: '10b',
        PERFSTACK_DASHBOARD_TOKEN: 'tok-123',
      },
    });
    const app = express();
    app.use(stack);
    app.get('/health', stack.health());
    app.post('/echo', express.text(), (req, res) => {
      res.send(req.body);
    });
    server = await listen(app);
    const allowed = await request(`${server.url}/health`, { headers: { origin: 'https://b.example' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('https://b.example');
    const other = await request(`${server.url}/health`, { headers: { origin: 'https://c.example' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    const big = await request(`${server.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'more than ten bytes',
    });
    expect(big.status).toBe(413);
    expect(big.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 10 });
    // the token is accepted by the stack's endpoints (loopback is allowed anyway; a wrong token is refused)
    const wrong = await request(`${server.url}/health`, { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    const right = await request(`${server.url}/health`, { headers: { authorization: 'Bearer tok-123' } });
    expect(right.status).toBe(200);
  });
});

describe('PERFSTACK_DASHBOARD_CSRF_SECRET', () => {
  it("gives every stack with the same secret the same dashboard token, so one instance's page works on another", async () => {
    const secret = 'a-test-secret-of-at-least-32-characters';
    const pageToken = async (env: Record<string, string>) => {
      const one = performanceStack({ log: quiet, logger: silentLog, redis: false, env });
      const app = express();
      app.use('/dashboard', one.dashboard());
      const running = await listen(app);
      const page = await request(`${running.url}/dashboard/`);
      await running.close();
      await one.close();
      expect(page.status).toBe(200);
      return /<meta name="csrf-token" content="([^"]+)">/.exec(page.text)?.[1];
    };
    const a = await pageToken({ PERFSTACK_DASHBOARD_CSRF_SECRET: secret });
    const b = await pageToken({ PERFSTACK_DASHBOARD_CSRF_SECRET: secret });
    const alone = await pageToken({});
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(b).toBe(a);
    expect(alone).not.toBe(a);
  });
});

describe('close()', () => {
  it('lets the process exit: no timer or connection keeps it alive (with Redis)', async () => {
    const url = await redisUrl();
    const script = fileURLToPath(new URL('./fixtures/exit-after-close.mjs', import.meta.url));
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, REDIS_URL: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const started = Date.now();
    const code = await new Promise<number | null>((resolve) => {
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.on('exit', (c) => {
        clearTimeout(killer);
        resolve(c);
      });
    });
    expect(out).toContain('served 200 MISS, 200 HIT; redis up');
    expect(out).toContain('closed');
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
  });
});
