/**
 * perfstack/fastify: the checks frameworks.test.ts runs on Express, Koa and node:http, run on
 * the Fastify example (a real Fastify 5 server on 127.0.0.1), plus what is Fastify's own:
 * encapsulation (a sibling context stays unguarded), the body limit decided in `preParsing`
 * (413 problem+json, Fastify's parser never runs, one answer), per-route `config.perfstack`
 * over the stack's defaults, and the interplay rules (no Set-Cookie from the cache, no
 * RateLimit headers stored).
 */
import { Socket } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import perfstack, { performanceStack } from 'perfstack/fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../examples/fastify-api/app.js';
import { request, waitFor } from '../helpers/http.js';

const quiet = { warn() {}, error() {} };
const silentLog = { destination: { write() {} } };
const stackOptions = { env: false, log: quiet, logger: silentLog };
const catalogOptions = { latencyMs: 2, failureRate: 0 };

async function start(app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  app.server.keepAliveTimeout = 1000;
  return `http://127.0.0.1:${address.port}`;
}

describe('the full stack on Fastify (examples/fastify-api)', () => {
  let app: FastifyInstance;
  let url: string;
  beforeAll(async () => {
    ({ app } = await createApp({ redis: '', stackOptions, catalogOptions }));
    url = await start(app);
  });
  afterAll(async () => {
    await app.close();
  });

  it('answers through every layer: helmet, request id, rate-limit headers, timing, cache miss then hit', async () => {
    const miss = await request(`${url}/products`);
    expect(miss.status).toBe(200);
    expect(miss.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(miss.json()).toHaveLength(5);
    expect(miss.headers['x-cache']).toBe('MISS');
    expect(miss.headers['x-content-type-options']).toBe('nosniff');
    expect(miss.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(miss.headers['content-security-policy']).toContain("default-src 'self'");
    expect(miss.headers['strict-transport-security']).toBe('max-age=31536000; includeSubDomains');
    expect(miss.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(miss.headers['ratelimit-policy']).toBe('"300-in-1min"; q=300; w=60');
    expect(miss.headers['ratelimit']).toBe('"300-in-1min"; r=299; t=60');
    expect(miss.headers['server-timing']).toMatch(/^app;dur=[\d.]+, cache;dur=[\d.]+;desc=miss, total;dur=[\d.]+$/);

    const hit = await request(`${url}/products`, { headers: { 'x-request-id': 'client-trace-1' } });
    expect(hit.status).toBe(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.headers.age).toMatch(/^\d+$/);
    expect(hit.text).toBe(miss.text);
    expect(hit.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(hit.headers['x-request-id']).toBe('client-trace-1');
    expect(hit.headers['x-content-type-options']).toBe('nosniff');
    // RateLimit headers are never stored, and a hit is not counted.
    expect(hit.headers['ratelimit']).toBeUndefined();
    expect(hit.headers['ratelimit-policy']).toBeUndefined();
    expect(hit.headers['server-timing']).toMatch(/^cache;dur=[\d.]+;desc=hit, total;dur=[\d.]+$/);
  });

  it('gives each allowed origin its own CORS answer, and none to others, from the cache too', async () => {
    const a = 'https://shop.example.com';
    const b = 'http://localhost:5173';
    const first = await request(`${url}/products/2`, { headers: { origin: a } });
    expect(first.status).toBe(200);
    expect(first.headers['access-control-allow-origin']).toBe(a);
    expect(first.headers.vary).toBe('Origin');
    const second = await request(`${url}/products/2`, { headers: { origin: b } });
    expect(second.headers['access-control-allow-origin']).toBe(b);
    const againA = await request(`${url}/products/2`, { headers: { origin: a } });
    expect(againA.headers['x-cache']).toBe('HIT');
    expect(againA.headers['access-control-allow-origin']).toBe(a);
    const againB = await request(`${url}/products/2`, { headers: { origin: b } });
    expect(againB.headers['x-cache']).toBe('HIT');
    expect(againB.headers['access-control-allow-origin']).toBe(b);
    const evil = await request(`${url}/products/2`, { headers: { origin: 'https://evil.example' } });
    expect(evil.status).toBe(200);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers a CORS preflight for an allowed origin, before Fastify routes OPTIONS', async () => {
    const res = await request(`${url}/products`, {
      method: 'OPTIONS',
      headers: { origin: 'https://shop.example.com', 'access-control-request-method': 'POST' },
    });
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('https://shop.example.com');
    expect(res.headers['access-control-allow-methods']).toBe('GET,HEAD,PUT,PATCH,POST,DELETE');
    expect(res.text).toBe('');
  });

  it('invalidates by tag on a write', async () => {
    await request(`${url}/products`);
    expect((await request(`${url}/products`)).headers['x-cache']).toBe('HIT');
    const created = await request(`${url}/products`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'Knock box', price: 25 }),
    });
    expect(created.status).toBe(201);
    expect(created.json()).toEqual({ id: '6', name: 'Knock box', price: 25 });
    const after = await request(`${url}/products`);
    expect(after.headers['x-cache']).toBe('MISS');
    expect(after.json<Array<{ name: string }>>().map((p) => p.name)).toContain('Knock box');
  });

  it("answers Fastify's own errors as problem+json: malformed JSON 400, unsupported media type 415", async () => {
    const malformed = await request(`${url}/products`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name":',
    });
    expect(malformed.status).toBe(400);
    expect(malformed.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(malformed.headers['x-content-type-options']).toBe('nosniff');
    expect(malformed.json()).toEqual({
      type: 'urn:perfstack:problem:bad-request',
      title: 'Bad Request',
      status: 400,
      detail: 'The request could not be processed.',
      code: 'BAD_REQUEST',
    });
    const xml = await request(`${url}/products`, {
      method: 'POST',
      headers: { 'content-type': 'application/xml' },
      body: '<product/>',
    });
    expect(xml.status).toBe(415);
    expect(xml.json()).toMatchObject({ status: 415, code: 'UNSUPPORTED_MEDIA_TYPE' });
  });

  it('serves /health, /metrics (by route pattern) and /dashboard to loopback clients, uncached and unlimited', async () => {
    await request(`${url}/products/3`);
    await request(`${url}/products/4`);
    const health = await request(`${url}/health`);
    expect(health.status).toBe(200);
    expect(health.headers['cache-control']).toBe('no-store');
    expect(health.headers['x-cache']).toBeUndefined();
    expect(health.headers['ratelimit']).toBeUndefined();
    expect(health.json()).toMatchObject({ status: 'ok' });
    const metrics = await request(`${url}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toMatch(/^text\/plain/);
    expect(metrics.text).toMatch(/http_request_duration_seconds_bucket\{[^}]*route="\/products\/:id"/);
    expect(metrics.text).not.toMatch(/route="\/products\/3"/);
    const page = await request(`${url}/dashboard/`);
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['x-cache']).toBeUndefined();
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    const snapshot = await request(`${url}/dashboard/api/snapshot`);
    expect(snapshot.status).toBe(200);
    expect(snapshot.json<{ cache: { hits: number } }>().cache.hits).toBeGreaterThan(0);
    const report = await request(`${url}/dashboard/api/report`);
    expect(report.status).toBe(200);
    const body = report.json<{ score: number; grade: string; recommendations: unknown[] }>();
    expect(body.score).toBeGreaterThanOrEqual(0);
    expect(body.score).toBeLessThanOrEqual(100);
    expect(body.grade).toMatch(/^[A-F]$/);
    expect(Array.isArray(body.recommendations)).toBe(true);
  });
});

describe('perfstack/fastify on its own apps', () => {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
  });
  const make = () => {
    const app = Fastify({ logger: false });
    apps.push(app);
    return app;
  };

  it('registered in a child context, guards only that context: a sibling and the root stay unguarded', async () => {
    const app = make();
    await app.register(
      async (api) => {
        await api.register(perfstack, { ...stackOptions, rateLimit: { limit: 2, window: '1m' } });
        api.get('/items', async () => ({ guarded: true }));
      },
      { prefix: '/api' },
    );
    await app.register(async (sibling) => {
      sibling.get('/open', async () => ({ guarded: false }));
    });
    const url = await start(app);

    const guarded = await request(`${url}/api/items`);
    expect(guarded.status).toBe(200);
    expect(guarded.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(guarded.headers['x-content-type-options']).toBe('nosniff');
    expect(guarded.headers['ratelimit-policy']).toBe('"2-in-1min"; q=2; w=60');
    expect((await request(`${url}/api/items`)).status).toBe(200);
    const refused = await request(`${url}/api/items`);
    expect(refused.status).toBe(429);
    expect(refused.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(refused.json()).toMatchObject({ status: 429, code: 'RATE_LIMITED', title: 'Too Many Requests' });

    for (let i = 0; i < 4; i++) {
      const open = await request(`${url}/open`);
      expect(open.status).toBe(200);
      expect(open.json()).toEqual({ guarded: false });
      expect(open.headers['x-request-id']).toBeUndefined();
      expect(open.headers['x-content-type-options']).toBeUndefined();
      expect(open.headers['ratelimit-policy']).toBeUndefined();
      expect(open.headers['server-timing']).toBeUndefined();
      expect(open.headers['x-cache']).toBeUndefined();
    }
    // The endpoints are routes of the guarded context, under its prefix.
    const health = await request(`${url}/api/health`);
    expect(health.status).toBe(200);
    expect(health.json()).toMatchObject({ status: 'ok' });
    expect(health.headers['ratelimit']).toBeUndefined();
    expect((await request(`${url}/health`)).status).toBe(404);
    expect(app.hasDecorator('perfstack')).toBe(false);
  });

  it('decides the body limit in preParsing: 413 problem+json, the parser never runs, one answer', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const app = make();
    let parsed = 0;
    let handled = 0;
    await app.register(perfstack, {
      ...stackOptions,
      sizeLimit: { limit: '1kb' },
      logger: { refusalInterval: 0, destination: { write: (line: string) => lines.push(JSON.parse(line)) } },
    });
    // A stream parser: counted the moment Fastify hands it the body, before it reads a byte.
    app.addContentTypeParser('application/json', (_request, payload, done) => {
      parsed++;
      const chunks: Buffer[] = [];
      payload.on('data', (chunk: Buffer) => chunks.push(chunk));
      payload.on('end', () => done(null, JSON.parse(Buffer.concat(chunks).toString('utf8'))));
    });
    app.post('/upload', async (request) => {
      handled++;
      return { size: JSON.stringify(request.body).length };
    });
    const url = await start(app);

    const small = await request(`${url}/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ a: 'x'.repeat(100) }),
    });
    expect(small.status).toBe(200);
    expect(small.json()).toEqual({ size: 108 });
    expect([parsed, handled]).toEqual([1, 1]);

    const big = await request(`${url}/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ a: 'x'.repeat(4000) }),
    });
    expect(big.status).toBe(413);
    expect(big.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(big.headers['x-content-type-options']).toBe('nosniff');
    expect(big.json()).toEqual({
      type: 'urn:perfstack:problem:payload-too-large',
      title: 'Payload Too Large',
      status: 413,
      detail: 'The request body of 4008 bytes is larger than the limit of 1024 bytes.',
      code: 'PAYLOAD_TOO_LARGE',
      limit: 1024,
      contentLength: 4008,
    });
    expect([parsed, handled]).toEqual([1, 1]);

    // A chunked body crossing the limit: the parser is waiting, the handler never runs.
    const raw = await rawExchange(
      url,
      'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' +
        `${(3000).toString(16)}\r\n${'y'.repeat(3000)}\r\n0\r\n\r\n`,
    );
    expect(raw.split('\r\n')[0]).toBe('HTTP/1.1 413 Payload Too Large');
    expect(raw.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(handled).toBe(1);

    await new Promise((resolve) => setTimeout(resolve, 50));
    const statuses = lines.filter((l) => l.msg !== undefined).map((l) => (l.res as { statusCode: number }).statusCode);
    expect(statuses).toEqual([200, 413, 413]);
    expect(lines.some((l) => /already sent|ERR_HTTP_HEADERS_SENT/i.test(JSON.stringify(l)))).toBe(false);
  });

  it("answers Fastify's own bodyLimit (a route's, below the stack's) as problem+json 413", async () => {
    const app = make();
    await app.register(perfstack, { ...stackOptions, sizeLimit: { limit: '1mb' } });
    app.post('/small', { bodyLimit: 100 }, async () => ({ ok: true }));
    const url = await start(app);
    const res = await request(`${url}/small`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ a: 'x'.repeat(200) }),
    });
    expect(res.status).toBe(413);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.json()).toEqual({
      type: 'urn:perfstack:problem:payload-too-large',
      title: 'Payload Too Large',
      status: 413,
      detail: 'The request could not be processed.',
      code: 'PAYLOAD_TOO_LARGE',
    });
  });

  it("takes a route's config.perfstack over the stack's defaults: cache, rate limit, body limit", async () => {
    const app = make();
    await app.register(perfstack, {
      ...stackOptions,
      rateLimit: { limit: 100, window: '1m' },
      sizeLimit: { limit: '1kb' },
    });
    // The app's own onResponse hooks see every answer, the ones the stack wrote on reply.raw too.
    const finished: string[] = [];
    app.addHook('onResponse', async (request, reply) => {
      finished.push(`${request.url} ${reply.statusCode} ${String(reply.raw.getHeader('x-cache'))}`);
    });
    let origin = 0;
    app.get('/cached', { config: { perfstack: { cache: { ttl: '5m', tags: ['products'] } } } }, async () => {
      origin++;
      return { origin };
    });
    app.get('/plain', async () => {
      origin++;
      return { origin };
    });
    app.get('/login', { config: { perfstack: { rateLimit: { limit: 1, window: '1m' } } } }, async () => ({ ok: 1 }));
    app.post('/upload', { config: { perfstack: { sizeLimit: { limit: '8kb' } } } }, async (request) => ({
      length: (request.body as { a: string }).a.length,
    }));
    app.post('/note', async () => ({ ok: true }));
    const url = await start(app);

    const first = await request(`${url}/cached`);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.json()).toEqual({ origin: 1 });
    const second = await request(`${url}/cached`);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.json()).toEqual({ origin: 1 });
    await waitFor(() => finished.length === 2);
    expect(finished).toEqual(['/cached 200 MISS', '/cached 200 HIT']);
    expect(await app.perfstack.cache.invalidate({ tags: ['products'] })).toBe(1);
    const third = await request(`${url}/cached`);
    expect(third.headers['x-cache']).toBe('MISS');
    expect(third.json()).toEqual({ origin: 2 });
    expect((await request(`${url}/plain`)).json()).toEqual({ origin: 3 });
    const plain = await request(`${url}/plain`);
    expect(plain.json()).toEqual({ origin: 4 });
    expect(plain.headers['x-cache']).not.toBe('HIT');

    const login = await request(`${url}/login`);
    expect(login.status).toBe(200);
    expect(login.headers['ratelimit-policy']).toBe('"1-in-1min"; q=1; w=60');
    const again = await request(`${url}/login`);
    expect(again.status).toBe(429);
    expect(again.json()).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
    expect((await request(`${url}/plain`)).status).toBe(200);

    const body = JSON.stringify({ a: 'z'.repeat(5000) });
    const upload = await request(`${url}/upload`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(upload.status).toBe(200);
    expect(upload.json()).toEqual({ length: 5000 });
    const note = await request(`${url}/note`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    expect(note.status).toBe(413);
    expect(note.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 1024 });
  });

  it('keys breakers by the route pattern: a throwing route opens its own breaker; errors are problem+json on the access line', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const app = make();
    await app.register(perfstack, {
      ...stackOptions,
      circuitBreaker: { failureThreshold: 3, resetTimeout: '1h' },
      logger: { refusalInterval: 0, destination: { write: (line: string) => lines.push(JSON.parse(line)) } },
    });
    let calls = 0;
    app.get('/fail/:id', async () => {
      calls++;
      throw new Error('database down');
    });
    app.get('/ok/:id', async () => ({ ok: true }));
    const url = await start(app);
    for (const id of [1, 2, 3]) {
      const failed = await request(`${url}/fail/${id}`);
      expect(failed.status).toBe(500);
      expect(failed.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(failed.json()).toEqual({
        type: 'urn:perfstack:problem:internal-error',
        title: 'Internal Server Error',
        status: 500,
        detail: 'The server failed to answer the request.',
        code: 'INTERNAL_ERROR',
      });
    }
    const open = await request(`${url}/fail/9`);
    expect(open.status).toBe(503);
    expect(open.json()).toMatchObject({ status: 503, code: 'CIRCUIT_OPEN' });
    expect(calls).toBe(3);
    expect((await request(`${url}/ok/1`)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const first = lines[0] as { route: string; err?: { message: string }; res: { statusCode: number } };
    expect(first.route).toBe('/fail/:id');
    expect(first.res.statusCode).toBe(500);
    expect(first.err?.message).toBe('database down');
    expect(lines.map((l) => [l.route, (l.res as { statusCode: number }).statusCode])).toEqual([
      ['/fail/:id', 500],
      ['/fail/:id', 500],
      ['/fail/:id', 500],
      ['/fail/:id', 503],
      ['/ok/:id', 200],
    ]);
  });

  it("makes request.log the stack's redacted access logger, with the request id", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const app = make();
    await app.register(perfstack, {
      ...stackOptions,
      logger: { destination: { write: (line: string) => lines.push(JSON.parse(line)) } },
    });
    app.get('/users/:id', async (request) => {
      request.log.info({ user: { id: 7, password: 'hunter2' }, token: 'abc123' }, 'looked up');
      return { id: 7 };
    });
    const url = await start(app);
    const res = await request(`${url}/users/7`, { headers: { 'x-request-id': 'trace-42' } });
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toBe('trace-42');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(lines).toHaveLength(2);
    const [handlerLine, accessLine] = lines as [Record<string, unknown>, Record<string, unknown>];
    expect(handlerLine.msg).toBe('looked up');
    expect(handlerLine.reqId).toBe('trace-42');
    expect(handlerLine.user).toEqual({ id: 7, password: '[REDACTED]' });
    expect(handlerLine.token).toBe('[REDACTED]');
    expect(accessLine.reqId).toBe('trace-42');
    expect(accessLine.route).toBe('/users/:id');
    expect(accessLine.msg).toBe('request completed');
  });

  it('never stores a response that sets a cookie, and labels metrics by the route pattern', async () => {
    const app = make();
    await app.register(perfstack, stackOptions);
    let calls = 0;
    app.get('/session/:id', { config: { perfstack: { cache: { ttl: '5m' } } } }, async (_request, reply) => {
      calls++;
      reply.header('set-cookie', `sid=${calls}; HttpOnly`);
      return { calls };
    });
    const url = await start(app);
    const one = await request(`${url}/session/7`);
    expect(one.headers['set-cookie']).toEqual(['sid=1; HttpOnly']);
    const two = await request(`${url}/session/7`);
    expect(two.headers['x-cache']).not.toBe('HIT');
    expect(two.headers['set-cookie']).toEqual(['sid=2; HttpOnly']);
    expect(two.json()).toEqual({ calls: 2 });
    const metrics = await request(`${url}/metrics`);
    expect(metrics.text).toMatch(/http_requests_total\{[^}]*route="\/session\/:id"[^}]*\} 2/);
    expect(metrics.text).not.toContain('/session/7');
  });

  it('rejects a bad route config and unknown plugin options when the app starts', async () => {
    const app = make();
    await app.register(perfstack, stackOptions);
    expect(() => app.get('/x', { config: { perfstack: { cahce: { ttl: '1m' } } as never } }, async () => ({}))).toThrow(
      'perfstack/fastify: route /x: unknown config.perfstack option "cahce" (expected cache, rateLimit, sizeLimit or skip)',
    );
    const other = make();
    await expect(other.register(perfstack, { ...stackOptions, paths: { metrics: 3 as never } })).rejects.toThrow(
      'perfstack/fastify: option "paths.metrics" must be a path or false, got number',
    );
  });

  it('uses a stack built already (option stack): shared across apps, still serving after one app closes', async () => {
    const stack = performanceStack(stackOptions);
    try {
      const serve = async () => {
        const app = make();
        await app.register(perfstack, { stack });
        app.get('/shared', { config: { perfstack: { cache: { ttl: '5m' } } } }, async () => ({ at: Date.now() }));
        return { app, url: await start(app) };
      };
      const first = await serve();
      // One Host for both apps (they listen on two ports): the cache keys by authority.
      const miss = await request(`${first.url}/shared`, { headers: { host: 'shop.example' } });
      expect(miss.headers['x-cache']).toBe('MISS');
      expect(first.app.perfstack).toBe(stack);
      await first.app.close();
      const second = await serve();
      const hit = await request(`${second.url}/shared`, { headers: { host: 'shop.example' } });
      expect(hit.headers['x-cache']).toBe('HIT');
      expect(hit.text).toBe(miss.text);
      expect((await request(`${second.url}/health`)).status).toBe(200);
      await expect(make().register(perfstack, { stack, cache: false })).rejects.toThrow(
        'perfstack/fastify: option "stack" is a stack built already: give "cache" to performanceStack(), not here',
      );
      await expect(make().register(perfstack, { stack, paths: { metrics: '/m' } })).rejects.toThrow(
        'perfstack/fastify: with option "stack", the endpoints are at the stack\'s paths; "paths.metrics" may only be false',
      );
    } finally {
      await stack.close();
    }
  });

  it('leaves an endpoint out with false and serves another at a configured path', async () => {
    const app = make();
    await app.register(perfstack, { ...stackOptions, paths: { metrics: '/internal/metrics', dashboard: false } });
    app.get('/ok', async () => ({ ok: true }));
    const url = await start(app);
    expect((await request(`${url}/internal/metrics`)).status).toBe(200);
    expect((await request(`${url}/metrics`)).status).toBe(404);
    expect((await request(`${url}/dashboard/`)).status).toBe(404);
    expect((await request(`${url}/health`)).status).toBe(200);
  });
});

/** Writes `raw` on a fresh connection and reads everything until the server closes it or 2 s pass. */
function rawExchange(url: string, raw: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(data);
    }, 2000);
    socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    socket.on('error', (error) => {
      clearTimeout(timer);
      if (data !== '') resolve(data);
      else reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
    socket.connect(Number(port), '127.0.0.1', () => socket.write(raw));
  });
}
