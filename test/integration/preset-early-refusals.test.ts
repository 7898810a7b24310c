/**
 * Early refusals (packages/perfstack/src/refusal-gate.ts): a rate-limited request, a
 * request to an open breaker and a declared body over every limit (413, at the end) are answered before Express dispatches them (or first thing in
 * the stack), and the answer is the one the chain gives — same status, body and headers,
 * minus the `X-Cache`/`Server-Timing` of layers that did not run — counted in the same
 * metrics and aggregated in the same access log.
 *
 * Which path answered is visible: a refusal the chain answered carries `X-Cache` (the cache
 * layer ran); an early one does not. The access log writes the first refusal of a client per
 * interval through the chain (that line is due), and the later ones are answered early.
 */
import http from 'node:http';
import net from 'node:net';
import bodyParser from '@koa/bodyparser';
import express from 'express';
import express4 from 'express4';
import Koa from 'koa';
import { type PerformanceStack, performanceStack, sizeLimit } from 'perfstack';
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

// --- The early 413 -----------------------------------------------------------------------
// A request whose declared `Content-Length` is over every body limit a route may have is
// answered before the app runs, with size-limit's own 413 — same status, problem+json body and
// headers (minus `X-Cache`/`Server-Timing`), the same count in its metric and in the access
// log's aggregation, the connection kept as a drained refusal keeps it. The first 413 of a
// client (its access-log line is due) is decided by the stack's last layer, the next ones by
// the gate; with `early: false` the route's reader decides, as before. All answer the same.

/** A refusal's headers without `RateLimit`, whose remaining count differs between two answers. */
function without413Count(response: TestResponse): Record<string, unknown> {
  const { ratelimit: _, ...rest } = comparable(response);
  return rest;
}

/** The early answer is the chain's, the limiter having counted one more request in between. */
function expectSameAnswer(chain: TestResponse, early: TestResponse): void {
  expect(early.text).toBe(chain.text);
  expect(without413Count(early)).toEqual(without413Count(chain));
  expect(chain.headers.ratelimit).toBe('"1000-in-1hr"; r=999; t=3600');
  expect(early.headers.ratelimit).toBe('"1000-in-1hr"; r=998; t=3600');
}

/** The stack's body limit is 1 kB; one test raises a route to 4 kB, so refused bodies here are 8 kB. */
const OVER = JSON.stringify({ pad: 'x'.repeat(8000) });
const BETWEEN = JSON.stringify({ pad: 'x'.repeat(3000) });
const JSON_TYPE = { 'content-type': 'application/json' };

const EXPECTED_BODY = JSON.stringify({
  type: 'urn:perfstack:problem:payload-too-large',
  title: 'Payload Too Large',
  status: 413,
  detail: `The request body of ${OVER.length} bytes is larger than the limit of 1024 bytes.`,
  code: 'PAYLOAD_TOO_LARGE',
  limit: 1024,
  contentLength: OVER.length,
});

/** The stack of the 413 tests: a 1 kB body limit, a rate limit that never refuses. */
function stackOptions413(sizeOptions: Record<string, unknown> = {}, lines = new Lines()) {
  return {
    env: false,
    log: quiet,
    logger: { destination: lines },
    rateLimit: { limit: 1000, window: '1h' },
    sizeLimit: { limit: '1kb', ...sizeOptions },
  };
}

function build413(sizeOptions: Record<string, unknown> = {}): { stack: PerformanceStack; lines: Lines } {
  const lines = new Lines();
  const stack = performanceStack(stackOptions413(sizeOptions, lines));
  stacks.push(stack);
  return { stack, lines };
}

/**
 * Writes `posts` over-limit POSTs to `path` and then `last` on one connection, as a keep-alive
 * client does, and reads the answers (status and `Connection`) until the server has answered
 * them all or closed; also says how many connections the server saw.
 */
async function onOneConnection(
  server: TestServer,
  path: string,
  posts: number,
  last: string,
): Promise<{ answers: string[]; connections: number }> {
  let connections = 0;
  server.server.on('connection', () => connections++);
  const answers = await new Promise<string[]>((resolve, reject) => {
    const socket = net.connect(Number(new URL(server.url).port), '127.0.0.1');
    let text = '';
    const found: string[] = [];
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      for (;;) {
        const end = text.indexOf('\r\n\r\n');
        if (end === -1) break;
        const head = text.slice(0, end).split('\r\n');
        const field = (name: string) =>
          head
            .find((l) => l.toLowerCase().startsWith(`${name}:`))
            ?.slice(name.length + 1)
            .trim();
        const length = Number(field('content-length') ?? 0);
        if (text.length < end + 4 + length) break;
        found.push(`${head[0]?.split(' ')[1]} ${field('connection')}`);
        text = text.slice(end + 4 + length);
        if (found.length === posts + 1) socket.end();
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(found));
    const post = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${OVER.length}\r\n\r\n${OVER}`;
    socket.write(`${post.repeat(posts)}${last}`);
  });
  return { answers, connections };
}

const GET = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n';
const KEPT = ['413 keep-alive', '413 keep-alive', '413 keep-alive'];

const refusedLines = (lines: Lines): number =>
  lines.all.filter((l) => (l.res as { statusCode?: number } | undefined)?.statusCode === 413).length;

describe.each([
  ['Express 5', express],
  ['Express 4', express4],
] as const)('early 413 on %s', (_name, framework) => {
  function app(stack: PerformanceStack, calls: { parsed: number; handled: number }) {
    const a = framework();
    a.use(stack);
    a.get('/metrics', stack.metrics());
    const json = framework.json({ limit: '1mb' });
    const parse: express.RequestHandler = (req, res, next) => {
      calls.parsed++;
      json(req, res, next);
    };
    const handler: express.RequestHandler = (req, res) => {
      calls.handled++;
      res.json({ size: JSON.stringify(req.body).length });
    };
    a.post('/api/:id', parse, handler);
    a.post('/upload', sizeLimit.route({ limit: '4kb' }), parse, handler);
    a.post('/ignore', (_req, res) => {
      calls.handled++;
      res.status(204).end();
    });
    return a;
  }

  it('the next 413s are answered early with the chain’s answer; parser and handler never run; keep-alive kept', async () => {
    const { stack, lines } = build413();
    const calls = { parsed: 0, handled: 0 };
    const server = await serve(app(stack, calls));
    const post = () => request(`${server.url}/api/1`, { method: 'POST', headers: JSON_TYPE, body: OVER });
    const chain = await post();
    const early = await post();
    const again = await post();
    expect([chain.status, early.status, again.status]).toEqual([413, 413, 413]);
    expect(calls).toEqual({ parsed: 0, handled: 0 });
    expect(chain.headers['x-cache']).toBeDefined();
    expect(early.headers['x-cache']).toBeUndefined();
    expect(chain.text).toBe(EXPECTED_BODY);
    expectSameAnswer(chain, early);
    expect(early.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    // The connection is kept: the request behind the refused bodies is served on it.
    const one = await onOneConnection(server, '/api/1', 3, GET.replace('GET /', 'GET /metrics'));
    expect(one).toEqual({ answers: [...KEPT, '200 keep-alive'], connections: 1 });
    const metrics = (await request(`${server.url}/metrics`)).text;
    expect(metricValue(metrics, 'perfstack_size_limit_rejected_total{code="PAYLOAD_TOO_LARGE"}')).toBe(6);
    expect(
      metricValue(metrics, 'http_request_duration_seconds_count{method="POST",route="/api/:id",status_code="413"}'),
    ).toBe(6);
    // One line for the chain's 413; the early ones are aggregated like the chain's would be.
    expect(refusedLines(lines)).toBe(1);
  });

  it('a route that never reads its body gets 413 for a declared over-limit body (200 with early: false)', async () => {
    const calls = { parsed: 0, handled: 0 };
    const server = await serve(app(build413().stack, calls));
    const first = await request(`${server.url}/ignore`, { method: 'POST', headers: JSON_TYPE, body: OVER });
    const second = await request(`${server.url}/ignore`, { method: 'POST', headers: JSON_TYPE, body: OVER });
    expect([first.status, second.status]).toEqual([413, 413]);
    expect(second.text).toBe(EXPECTED_BODY);

    const off = { parsed: 0, handled: 0 };
    const offServer = await serve(app(build413({ early: false }).stack, off));
    const plain = await request(`${offServer.url}/ignore`, { method: 'POST', headers: JSON_TYPE, body: OVER });
    expect(plain.status).toBe(204);
    expect(off.handled).toBe(1);
  });

  it('a request the limiter skips goes down the chain as before', async () => {
    const calls = { parsed: 0, handled: 0 };
    const skipped = build413({ skip: (req: http.IncomingMessage) => req.url === '/ignore' }).stack;
    const server = await serve(app(skipped, calls));
    for (let i = 0; i < 2; i++) {
      const answer = await request(`${server.url}/ignore`, { method: 'POST', headers: JSON_TYPE, body: OVER });
      expect(answer.status).toBe(204);
    }
    expect(calls.handled).toBe(2);
  });

  it('early: false sends every 413 down the chain, with the same answer', async () => {
    const calls = { parsed: 0, handled: 0 };
    const server = await serve(app(build413({ early: false }).stack, calls));
    const answers: TestResponse[] = [];
    for (let i = 0; i < 3; i++) {
      answers.push(await request(`${server.url}/api/1`, { method: 'POST', headers: JSON_TYPE, body: OVER }));
    }
    expect(answers.map((a) => a.status)).toEqual([413, 413, 413]);
    expect(answers.map((a) => a.text)).toEqual([EXPECTED_BODY, EXPECTED_BODY, EXPECTED_BODY]);
    expect(calls).toEqual({ parsed: 3, handled: 0 });
    // The early answer is the reader's answer of today.
    const early = await serve(app(build413().stack, { parsed: 0, handled: 0 }));
    await request(`${early.url}/api/1`, { method: 'POST', headers: JSON_TYPE, body: OVER });
    const gated = await request(`${early.url}/api/1`, { method: 'POST', headers: JSON_TYPE, body: OVER });
    expect(gated.headers['x-cache']).toBeUndefined();
    expect(gated.text).toBe(answers[2]?.text);
    expect(without413Count(gated)).toEqual(without413Count(answers[2] as TestResponse));
  });

  it('a chunked over-limit body still gets the chain’s 413', async () => {
    const calls = { parsed: 0, handled: 0 };
    const server = await serve(app(build413().stack, calls));
    const chunked = { ...JSON_TYPE, 'transfer-encoding': 'chunked' };
    const first = await request(`${server.url}/api/1`, { method: 'POST', headers: chunked, body: OVER });
    const second = await request(`${server.url}/api/1`, { method: 'POST', headers: chunked, body: OVER });
    expect([first.status, second.status]).toEqual([413, 413]);
    expect(calls).toEqual({ parsed: 2, handled: 0 });
    expect(second.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 1024 });
  });

  it('a route with a raised limit still accepts a body between the two limits', async () => {
    const calls = { parsed: 0, handled: 0 };
    const server = await serve(app(build413().stack, calls));
    for (let i = 0; i < 2; i++) {
      const ok = await request(`${server.url}/upload`, { method: 'POST', headers: JSON_TYPE, body: BETWEEN });
      expect(ok.status).toBe(200);
      expect(ok.text).toBe(`{"size":${BETWEEN.length}}`);
    }
    expect(calls).toEqual({ parsed: 2, handled: 2 });
    // Other routes refuse it through the chain (their reader decides), as before.
    const refused = await request(`${server.url}/api/1`, { method: 'POST', headers: JSON_TYPE, body: BETWEEN });
    expect(refused.status).toBe(413);
    expect(calls.parsed).toBe(3);
  });
});

describe('early 413 in Koa and node:http (first thing in the stack)', () => {
  it('Koa: the next 413s are answered early with the chain’s answer', async () => {
    const stack = koaStack(stackOptions413());
    stacks.push(stack);
    const calls = { parsed: 0, handled: 0 };
    const app = new Koa();
    app.use(stack);
    const parser = bodyParser({ jsonLimit: '1mb' });
    app.use((ctx, next) => {
      calls.parsed++;
      return parser(ctx, next);
    });
    app.use((ctx) => {
      calls.handled++;
      ctx.body = { ok: true };
    });
    const server = await serve(app.callback());
    const post = () => request(`${server.url}/api/1`, { method: 'POST', headers: JSON_TYPE, body: OVER });
    const chain = await post();
    const early = await post();
    expect([chain.status, early.status]).toEqual([413, 413]);
    expect(calls).toEqual({ parsed: 0, handled: 0 });
    expect(chain.text).toBe(EXPECTED_BODY);
    expectSameAnswer(chain, early);
    const one = await onOneConnection(server, '/api/1', 3, GET);
    expect(one).toEqual({ answers: [...KEPT, '200 keep-alive'], connections: 1 });
    expect(calls).toEqual({ parsed: 1, handled: 1 });
  });

  it('node:http: the next 413s are answered early with the chain’s answer', async () => {
    const stack = nodeStack(stackOptions413());
    stacks.push(stack);
    let handled = 0;
    const server = await serve(
      createListener(stack, (req, res) => {
        handled++;
        let size = 0;
        req.on('data', (chunk: Buffer) => {
          size += chunk.length;
        });
        req.on('end', () => res.end(String(size)));
      }),
    );
    const post = () => request(`${server.url}/api/1`, { method: 'POST', headers: JSON_TYPE, body: OVER });
    const chain = await post();
    const early = await post();
    expect([chain.status, early.status]).toEqual([413, 413]);
    expect(handled).toBe(0);
    expect(chain.text).toBe(EXPECTED_BODY);
    expectSameAnswer(chain, early);
    const one = await onOneConnection(server, '/api/1', 3, GET);
    expect(one).toEqual({ answers: [...KEPT, '200 keep-alive'], connections: 1 });
    expect(handled).toBe(1);
  });
});
