/**
 * Early refusals (packages/perfstack/src/refusal-gate.ts): a rate-limited request and a
 * request to an open breaker are answered before Express dispatches them (or first thing in
 * the stack), and the answer is the one the chain gives — same status, body and headers,
 * minus the `X-Cache`/`Server-Timing` of layers that did not run — counted in the same
 * metrics and aggregated in the same access log.
 *
 * Which path answered is visible: a refusal the chain answered carries `X-Cache` (the cache
 * layer ran); an early one does not. The access log writes the first refusal of a client per
 * interval through the chain (that line is due), and the later ones are answered early.
 */
import http from 'node:http';
import express from 'express';
import express4 from 'express4';
import Koa from 'koa';
import { type PerformanceStack, performanceStack } from 'perfstack';
import { performanceStack as koaStack } from 'perfstack/koa';
import { createListener, performanceStack as nodeStack } from 'perfstack/node';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestResponse, type TestServer } from '../helpers/http.js';
import { Lines } from '../helpers/lines.js';

const quiet = { warn() {}, error() {} };

let servers: TestServer[] = [];
let stacks: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const s of servers) await s.close();
  for (const s of stacks) await s.close();
  servers = [];
  stacks = [];
});

/** The headers a refusal carries that differ between two refusals or between the paths. */
const VARYING = new Set(['date', 'x-request-id', 'x-cache', 'server-timing', 'connection', 'keep-alive']);

function comparable(response: TestResponse): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(response.headers)) if (!VARYING.has(name)) out[name] = value;
  return out;
}

function build(options: Parameters<typeof performanceStack>[0] = {}): { stack: PerformanceStack; lines: Lines } {
  const lines = new Lines();
  const stack = performanceStack({
    env: false,
    log: quiet,
    logger: { destination: lines },
    rateLimit: { limit: 2, window: '1h' },
    ...options,
  });
  stacks.push(stack);
  return { stack, lines };
}

async function serve(listener: http.RequestListener): Promise<TestServer> {
  const server = await listen(listener);
  servers.push(server);
  return server;
}

const metricValue = (text: string, prefix: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
};

describe.each([
  ['Express 5', express],
  ['Express 4', express4],
] as const)('429 on %s', (_name, framework) => {
  it('the first refusal goes through the chain, the next ones are answered early with the same response', async () => {
    const { stack, lines } = build();
    const app = framework();
    app.use(stack);
    app.get('/metrics', stack.metrics());
    app.get('/api/:id', (_req, res) => {
      res.json({ ok: true });
    });
    const server = await serve(app);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const responses: TestResponse[] = [];
    for (let i = 0; i < 6; i++) responses.push(await request(`${server.url}/api/7`, { agent }));
    agent.destroy();
    expect(responses.map((r) => r.status)).toEqual([200, 200, 429, 429, 429, 429]);
    const [chain, early] = [responses[2] as TestResponse, responses[3] as TestResponse];
    // the chain ran for the first refusal (the cache layer saw it), not for the next ones
    expect(chain.headers['x-cache']).toBe('MISS');
    expect(chain.headers['server-timing']).toMatch(/total;dur=/);
    for (const r of responses.slice(3)) {
      expect(r.headers['x-cache']).toBeUndefined();
      expect(r.headers['server-timing']).toBeUndefined();
    }
    expect(comparable(early)).toEqual(comparable(chain));
    expect(early.text).toBe(chain.text);
    expect(early.json()).toEqual({
      type: 'urn:perfstack:problem:rate-limited',
      title: 'Too Many Requests',
      status: 429,
      detail: 'Too many requests, please try again later.',
      code: 'RATE_LIMITED',
      limit: '2-in-1hr',
      retryAfter: Number(chain.headers['retry-after']),
    });
    expect(early.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(early.headers['cache-control']).toBe('no-store');
    expect(early.headers['x-content-type-options']).toBe('nosniff');
    expect(early.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(early.headers['x-request-id']).not.toBe(chain.headers['x-request-id']);

    // every refusal counted: the limiter's metric and timing's request metric (by route pattern)
    const metrics = (await request(`${server.url}/metrics`)).text;
    expect(metrics).toContain('perfstack_rate_limit_requests_total{limit="2-in-1hr",outcome="blocked"} 4');
    expect(
      metricValue(metrics, 'http_request_duration_seconds_count{method="GET",route="/api/:id",status_code="429"}'),
    ).toBe(4);

    // one line for the first refusal; the three early ones are in the summary close() writes
    await stack.close();
    const refusalLines = lines.all.filter((l) => (l.res as { statusCode?: number } | undefined)?.statusCode === 429);
    expect(refusalLines).toHaveLength(1);
    expect(refusalLines[0]?.refused).toBe('RATE_LIMITED');
    expect(lines.all.filter((l) => l.msg === 'refusals suppressed').map((l) => l.suppressed)).toEqual([3]);
  });

  it('each early 429 carries the retryAfter and limit of its own moment, as the chain does (the bodies are kept per value)', async () => {
    let now = Date.UTC(2026, 0, 1);
    const { stack } = build({ rateLimit: { limit: 1, window: '10s', clock: () => now } });
    const app = framework();
    app.use(stack);
    app.get('/api/:id', (_req, res) => {
      res.json({ ok: true });
    });
    const server = await serve(app);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const answers: Array<[number, unknown, string | undefined]> = [];
    const at = async (ms: number) => {
      now = Date.UTC(2026, 0, 1) + ms;
      const r = await request(`${server.url}/api/7`, { agent });
      answers.push([r.status, r.status === 429 ? r.json() : undefined, r.headers['retry-after']]);
    };
    // 200, the chain's first refusal, then early ones at the same second, 3 s and 6.5 s later
    for (const ms of [0, 1000, 1000, 1000, 4000, 4000, 7500]) await at(ms);
    agent.destroy();
    const problem = (retryAfter: number) => ({
      type: 'urn:perfstack:problem:rate-limited',
      title: 'Too Many Requests',
      status: 429,
      detail: 'Too many requests, please try again later.',
      code: 'RATE_LIMITED',
      limit: '1-in-10sec',
      retryAfter,
    });
    expect(answers).toEqual([
      [200, undefined, undefined],
      [429, problem(9), '9'],
      [429, problem(9), '9'],
      [429, problem(9), '9'],
      [429, problem(6), '6'],
      [429, problem(6), '6'],
      [429, problem(3), '3'],
    ]);
  });

  it('a client-sent X-Request-Id is echoed; HEAD gets the headers only', async () => {
    const { stack } = build({ rateLimit: { limit: 1, window: '1h' }, logger: false });
    const app = framework();
    app.use(stack);
    app.get('/x', (_req, res) => {
      res.send('x');
    });
    const server = await serve(app);
    expect((await request(`${server.url}/x`)).status).toBe(200);
    const refused = await request(`${server.url}/x`, { headers: { 'x-request-id': 'trace-123' } });
    expect(refused.status).toBe(429);
    expect(refused.headers['x-cache']).toBeUndefined();
    expect(refused.headers['x-request-id']).toBe('trace-123');
    const head = await request(`${server.url}/x`, { method: 'HEAD' });
    expect(head.status).toBe(429);
    expect(head.headers['x-cache']).toBeUndefined();
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(refused.text)));
    expect(head.body.length).toBe(0);
  });
});

describe('what the early path leaves to the chain', () => {
  it('a cached response is still served to a rate-limited client (the cache sits before the limiter)', async () => {
    const { stack } = build({ rateLimit: { limit: 2, window: '1h' }, logger: false });
    const app = express();
    app.use(stack);
    app.get('/cached', (_req, res) => {
      res.set('Cache-Control', 'public, max-age=60').json({ cached: true });
    });
    app.get('/plain', (_req, res) => {
      res.json({ plain: true });
    });
    const server = await serve(app);
    expect((await request(`${server.url}/cached`)).headers['x-cache']).toBe('MISS');
    expect((await request(`${server.url}/plain`)).status).toBe(200);
    const limited = await request(`${server.url}/plain`);
    expect(limited.status).toBe(429);
    const hit = await request(`${server.url}/cached`);
    expect(hit.status).toBe(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.json()).toEqual({ cached: true });
  });

  it('the stack endpoints are never refused, and a preflight is CORS’s', async () => {
    const { stack } = build({ rateLimit: { limit: 1, window: '1h' }, logger: false, cors: { origin: '*' } });
    const app = express();
    app.use(stack);
    app.get('/metrics', stack.metrics());
    app.get('/x', (_req, res) => {
      res.send('x');
    });
    const server = await serve(app);
    await request(`${server.url}/x`);
    expect((await request(`${server.url}/x`)).status).toBe(429);
    expect((await request(`${server.url}/Metrics/`)).status).toBe(200);
    const preflight = await request(`${server.url}/x`, {
      method: 'OPTIONS',
      headers: { origin: 'https://a.example', 'access-control-request-method': 'GET' },
    });
    expect(preflight.status).toBe(204);
  });

  it('with a middleware before the stack, refusals are still answered first thing in the stack', async () => {
    const { stack } = build({ rateLimit: { limit: 1, window: '1h' } });
    const app = express();
    app.use((_req, res, next) => {
      res.setHeader('X-Before', 'yes');
      next();
    });
    app.use(stack);
    app.get('/x', (_req, res) => {
      res.send('x');
    });
    const server = await serve(app);
    await request(`${server.url}/x`);
    const chain = await request(`${server.url}/x`);
    const early = await request(`${server.url}/x`);
    expect([chain.status, early.status]).toEqual([429, 429]);
    expect(chain.headers['x-cache']).toBe('MISS');
    expect(early.headers['x-cache']).toBeUndefined();
    expect(comparable(early)).toEqual(comparable(chain));
    expect(early.text).toBe(chain.text);
  });

  it("Express's trust proxy decides the client, as it does for the limiter in the chain", async () => {
    const { stack } = build({ rateLimit: { limit: 1, window: '1h' }, logger: false });
    const app = express();
    app.set('trust proxy', 1);
    app.use(stack);
    app.get('/x', (_req, res) => {
      res.send('x');
    });
    const server = await serve(app);
    const from = (ip: string) => request(`${server.url}/x`, { headers: { 'x-forwarded-for': ip } });
    expect((await from('203.0.113.1')).status).toBe(200);
    expect((await from('203.0.113.1')).status).toBe(429);
    const early = await from('203.0.113.1');
    expect(early.status).toBe(429);
    expect(early.headers['x-cache']).toBeUndefined();
    expect((await from('203.0.113.2')).status).toBe(200);
  });

  it('CORS headers that depend on the Origin are set for each early refusal', async () => {
    const { stack } = build({
      rateLimit: { limit: 1, window: '1h' },
      cors: { origin: ['https://a.example'], exposedHeaders: ['RateLimit', 'Retry-After'] },
    });
    const app = express();
    app.use(stack);
    app.get('/x', (_req, res) => {
      res.send('x');
    });
    const server = await serve(app);
    const origin = { origin: 'https://a.example' };
    await request(`${server.url}/x`, { headers: origin });
    const chain = await request(`${server.url}/x`, { headers: origin });
    const early = await request(`${server.url}/x`, { headers: origin });
    expect(early.headers['x-cache']).toBeUndefined();
    expect(early.headers['access-control-allow-origin']).toBe('https://a.example');
    expect(early.headers['access-control-expose-headers']).toBe('RateLimit,Retry-After');
    expect(early.headers.vary).toBe('Origin');
    expect(comparable(early)).toEqual(comparable(chain));
    const other = await request(`${server.url}/x`, { headers: { origin: 'https://b.example' } });
    expect(other.status).toBe(429);
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('a rate-limited POST with a small body keeps its keep-alive connection', async () => {
    const { stack } = build({ rateLimit: { limit: 1, window: '1h' }, logger: false });
    const app = express();
    app.use(stack);
    app.post('/x', express.json(), (req, res) => {
      res.json(req.body);
    });
    const server = await serve(app);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const post = () =>
      request(`${server.url}/x`, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json' },
        body: '{"a":1}',
      });
    expect((await post()).status).toBe(200);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await post()).status);
    expect(statuses).toEqual([429, 429, 429, 429]);
    agent.destroy();
  });
});

describe('503 CIRCUIT_OPEN', () => {
  it('an open breaker refuses early with the chain’s answer, counted in the breaker’s metric', async () => {
    const { stack } = build({
      rateLimit: { limit: 1000, window: '1h' },
      circuitBreaker: { failureThreshold: 2, resetTimeout: '1h' },
    });
    const app = express();
    app.use(stack);
    app.get('/metrics', stack.metrics());
    app.get('/fail/:id', (_req, res) => {
      res.status(500).json({ error: 'down' });
    });
    const server = await serve(app);
    expect((await request(`${server.url}/fail/1`)).status).toBe(500);
    expect((await request(`${server.url}/fail/2`)).status).toBe(500);
    const chain = await request(`${server.url}/fail/3`);
    const early = await request(`${server.url}/fail/4`);
    expect([chain.status, early.status]).toEqual([503, 503]);
    expect(chain.headers['x-cache']).toBe('MISS');
    expect(early.headers['x-cache']).toBeUndefined();
    expect(early.json()).toMatchObject({ code: 'CIRCUIT_OPEN', status: 503 });
    expect(early.text).toBe(chain.text);
    const { ratelimit: chainLimit, ...chainRest } = comparable(chain);
    const { ratelimit: earlyLimit, ...earlyRest } = comparable(early);
    expect(earlyRest).toEqual(chainRest);
    // the limiter counted the request before the breaker refused it, on both paths
    expect(chainLimit).toBe('"1000-in-1hr"; r=997; t=3600');
    expect(earlyLimit).toBe('"1000-in-1hr"; r=996; t=3600');
    const metrics = (await request(`${server.url}/metrics`)).text;
    expect(metrics).toMatch(/perfstack_circuit_breaker_short_circuits_total\{breaker="GET \/fail\/:id"\} 2/);
    expect(
      metricValue(metrics, 'http_request_duration_seconds_count{method="GET",route="/fail/:id",status_code="503"}'),
    ).toBe(2);
  });
});

describe('Koa and node:http: first thing in the stack', () => {
  it('Koa: the next refusals are answered early, with the chain’s answer', async () => {
    const stack = koaStack({
      env: false,
      log: quiet,
      logger: { destination: new Lines() },
      rateLimit: { limit: 1, window: '1h' },
    });
    stacks.push(stack);
    const app = new Koa();
    app.use(stack);
    app.use((ctx) => {
      ctx.body = { ok: true };
    });
    const server = await serve(app.callback());
    expect((await request(server.url)).status).toBe(200);
    const chain = await request(server.url);
    const early = await request(server.url);
    expect([chain.status, early.status]).toEqual([429, 429]);
    expect(chain.headers['x-cache']).toBe('MISS');
    expect(early.headers['x-cache']).toBeUndefined();
    expect(comparable(early)).toEqual(comparable(chain));
    expect(early.text).toBe(chain.text);
  });

  it('node:http: the next refusals are answered early, with the chain’s answer', async () => {
    const stack = nodeStack({
      env: false,
      log: quiet,
      logger: { destination: new Lines() },
      rateLimit: { limit: 1, window: '1h' },
    });
    stacks.push(stack);
    const server = await serve(
      createListener(stack, (_req, res) => {
        res.end('ok');
      }),
    );
    expect((await request(server.url)).status).toBe(200);
    const chain = await request(server.url);
    const early = await request(server.url);
    expect([chain.status, early.status]).toEqual([429, 429]);
    expect(chain.headers['x-cache']).toBe('MISS');
    expect(early.headers['x-cache']).toBeUndefined();
    expect(comparable(early)).toEqual(comparable(chain));
    expect(early.text).toBe(chain.text);
  });
});
