/**
 * Early hits (packages/perfstack/src/refusal-gate.ts): a request the cache would answer from
 * a fresh stored entry is answered before Express dispatches it (when the stack is the app's
 * first middleware), or first thing in the stack (Koa, node:http), with the chain's answer:
 * the same status, headers and body (304, 206/416, HEAD, Vary variants, a client's request
 * id), counted in the same metrics and windows, and no access-log line (a hit passes no
 * layer behind the cache, on either path).
 *
 * The reference is the same app behind a stack built with the default order passed
 * explicitly: a stack with an `order` option answers nothing early (refusal-gate.ts), so
 * its hits are the chain's. Which path answered is visible: Express's `app.handle` is not
 * called for an early hit, and inside the stack timing's `close` listener is not added.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import Router from '@koa/router';
import express from 'express';
import express4 from 'express4';
import Koa from 'koa';
import { type PerformanceStack, type PerformanceStackOptions, performanceStack } from 'perfstack';
import { performanceStack as koaStack } from 'perfstack/koa';
import { createListener, performanceStack as nodeStack, setRoute } from 'perfstack/node';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, type TestServer } from '../helpers/http.js';
import { Lines } from '../helpers/lines.js';

const quiet = { warn() {}, error() {} };
const ORDER = ['timing', 'cache', 'sizeLimit', 'logger', 'helmet', 'cors', 'rateLimit', 'circuitBreaker'] as const;
const LAST_MODIFIED = 'Tue, 01 Dec 2026 10:00:00 GMT';
const BODY = 'hello, cached world';

let servers: TestServer[] = [];
let stacks: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const s of servers) await s.close();
  for (const s of stacks) await s.close();
  servers = [];
  stacks = [];
});

/**
 * Listens on 127.0.0.1:0. Kept-alive connections stay open 30 s (the helper's 1 s could close
 * one between two requests on a loaded machine, and the paths are compared per connection).
 */
async function serve(listener: Parameters<typeof listen>[0]): Promise<TestServer> {
  const server = await listen(listener);
  server.server.keepAliveTimeout = 30_000;
  servers.push(server);
  return server;
}

function options(lines: Lines, chain: boolean, extra: PerformanceStackOptions = {}): PerformanceStackOptions {
  return {
    env: false,
    log: quiet,
    logger: { destination: lines },
    cors: { origin: '*' },
    ...(chain ? { order: [...ORDER] } : {}),
    ...extra,
  };
}

/** A response with its raw header order. */
interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly rawNames: readonly string[];
  readonly body: string;
}

function send(url: string, agent: http.Agent, method: string, headers: Record<string, string>): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          rawNames: res.rawHeaders.filter((_, i) => i % 2 === 0),
          body: Buffer.concat(chunks).toString('latin1'),
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** Differs per request or per run: the values are left out (their presence is compared). */
const VARYING = new Set(['date', 'x-request-id', 'age', 'connection', 'keep-alive']);

function comparable(r: RawResponse): Record<string, unknown> {
  const headers: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(r.headers)) {
    if (VARYING.has(name)) headers[name] = '<present>';
    else if (name === 'server-timing') headers[name] = String(value).replace(/dur=[\d.]+/g, 'dur=N');
    else if (name === 'x-response-time') headers[name] = String(value).replace(/^[\d.]+ms$/, 'Nms');
    // seconds to the limiter's window reset: each stack's window started on its own
    else if (name === 'ratelimit') headers[name] = String(value).replace(/t=\d+/, 't=N');
    else headers[name] = value;
  }
  return { status: r.status, headers, order: r.rawNames.map((n) => n.toLowerCase()), body: r.body };
}

type Step = readonly [path: string, method: string, headers: Record<string, string>];

/** The requests every framework gets, in order; `early` says which the gated stack answers before the chain. */
const STEPS: ReadonlyArray<{ step: Step; early: boolean }> = [
  { step: ['/fresh', 'GET', {}], early: false }, // miss: stored
  { step: ['/fresh', 'GET', {}], early: true },
  { step: ['/fresh', 'HEAD', {}], early: true },
  { step: ['/fresh', 'GET', { 'if-none-match': '"v1"' }], early: true }, // 304
  { step: ['/fresh', 'GET', { 'if-modified-since': LAST_MODIFIED }], early: true }, // 304
  { step: ['/fresh', 'GET', { 'if-none-match': '"other"' }], early: true }, // 200
  { step: ['/fresh', 'GET', { range: 'bytes=0-4' }], early: true }, // 206
  { step: ['/fresh', 'GET', { range: 'bytes=500-600' }], early: true }, // 416
  { step: ['/fresh', 'GET', { 'x-request-id': 'trace-123' }], early: true },
  { step: ['/vary', 'GET', { 'accept-language': 'en' }], early: false },
  { step: ['/vary', 'GET', { 'accept-language': 'en' }], early: true },
  { step: ['/vary', 'GET', { 'accept-language': 'fr' }], early: false },
  { step: ['/vary', 'GET', { 'accept-language': 'fr' }], early: true },
  // stale with a validator: revalidated by the app, through the chain
  { step: ['/revalidate', 'GET', {}], early: false },
  { step: ['/revalidate', 'GET', {}], early: false },
  // not storable: every request reaches the app
  { step: ['/plain', 'GET', {}], early: false },
  { step: ['/plain', 'GET', {}], early: false },
];

/** What the routes answer, whatever the framework. */
const ROUTES = {
  fresh: () => ({
    'Cache-Control': 'public, max-age=600',
    ETag: '"v1"',
    'Last-Modified': LAST_MODIFIED,
    'Content-Type': 'text/plain; charset=utf-8',
  }),
  vary: () => ({ 'Cache-Control': 'public, max-age=600', Vary: 'Accept-Language', 'Content-Type': 'text/plain' }),
  revalidate: () => ({ 'Cache-Control': 'public, max-age=0', ETag: '"r1"', 'Content-Type': 'text/plain' }),
};

async function metricsOf(stack: PerformanceStack): Promise<string[]> {
  const text = await stack.registry.metrics();
  return text
    .split('\n')
    .filter(
      (l) => l.startsWith('http_request_duration_seconds_count') || /^perfstack_cache_(hits|misses|stale)/.test(l),
    )
    .sort();
}

function windowsOf(stack: PerformanceStack) {
  const snapshot = (stack.layers.timing as NonNullable<PerformanceStack['layers']['timing']>).snapshot();
  const w = snapshot.windows['1m'];
  return {
    total: snapshot.totalRequests,
    window: [w.requests, w.errors, w.cacheHits, w.cacheMisses, w.statusClasses],
    routes: snapshot.routes
      .map((r) => [r.method, r.route, r.count, r.cacheHitRatio])
      .sort((a, b) => String(a).localeCompare(String(b))),
  };
}

interface Side {
  readonly url: string;
  readonly stack: PerformanceStack;
  readonly lines: Lines;
}

/**
 * Runs STEPS on both servers, interleaved, and compares every answer, the metrics, the
 * windows and the access log. `gatedViaChain`, when given, says after each request whether
 * it went through the chain (checked against STEPS' `early`).
 */
async function compare(gated: Side, chain: Side, gatedViaChain?: () => boolean): Promise<void> {
  const agents = [
    new http.Agent({ keepAlive: true, maxSockets: 1 }),
    new http.Agent({ keepAlive: true, maxSockets: 1 }),
  ];
  const earlyByStep: boolean[] = [];
  try {
    for (const { step } of STEPS) {
      const [path, method, headers] = step;
      const a = await send(`${gated.url}${path}`, agents[0] as http.Agent, method, headers);
      if (gatedViaChain !== undefined) earlyByStep.push(!gatedViaChain());
      const b = await send(`${chain.url}${path}`, agents[1] as http.Agent, method, headers);
      expect(comparable(a), `${method} ${path} ${JSON.stringify(headers)}`).toEqual(comparable(b));
      if (headers['x-request-id'] !== undefined) expect(a.headers['x-request-id']).toBe(headers['x-request-id']);
      else expect(a.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
  } finally {
    for (const agent of agents) agent.destroy();
  }
  if (gatedViaChain !== undefined) expect(earlyByStep).toEqual(STEPS.map((s) => s.early));
  expect(await metricsOf(gated.stack)).toEqual(await metricsOf(chain.stack));
  if (gated.stack.layers.timing !== undefined) expect(windowsOf(gated.stack)).toEqual(windowsOf(chain.stack));
  await gated.stack.close();
  await chain.stack.close();
  // No access-log line for a hit on either path; the same lines otherwise.
  const logged = (lines: Lines) =>
    lines.all.map((l) => [(l.req as { url?: string })?.url, (l.res as { statusCode?: number })?.statusCode]);
  expect(logged(gated.lines)).toEqual(logged(chain.lines));
}

/** The routes of STEPS on an Express 4 or 5 app; `onRevalidate` hears each call of /revalidate. */
function expressRoutes(app: ReturnType<typeof express>, onRevalidate: () => void = () => {}): void {
  app.get('/fresh', (_req, res) => {
    res.set(ROUTES.fresh()).send(BODY);
  });
  app.get('/vary', (req, res) => {
    res.set(ROUTES.vary()).send(`lang ${req.get('accept-language')}`);
  });
  app.get('/revalidate', (req, res) => {
    onRevalidate();
    res.set(ROUTES.revalidate());
    if (req.get('if-none-match') === '"r1"') res.status(304).end();
    else res.send('revalidated');
  });
  app.get('/plain', (_req, res) => {
    res.send('plain');
  });
}

/** Counts Express's dispatches (`app.handle`): every request the gate leaves to Express. */
function spyDispatch(app: object): { count: number } {
  const spied = app as { handle: (...args: unknown[]) => unknown };
  const spy = { count: 0 };
  const handle = spied.handle;
  spied.handle = function spiedHandle(this: unknown, ...args: unknown[]) {
    spy.count++;
    return handle.apply(this, args);
  };
  return spy;
}

describe.each([
  ['Express 5', express],
  ['Express 4', express4],
] as const)('early hits on %s', (_name, framework) => {
  async function expressServer(chain: boolean, poweredBy: boolean, extra: PerformanceStackOptions = {}) {
    const lines = new Lines();
    const stack = performanceStack(options(lines, chain, extra));
    stacks.push(stack);
    const app = framework();
    if (!poweredBy) app.disable('x-powered-by');
    let revalidations = 0;
    app.use(stack);
    expressRoutes(app, () => revalidations++);
    const dispatched = spyDispatch(app);
    const server = await serve(app);
    let seen = 0;
    const viaChain = () => {
      const was = seen;
      seen = dispatched.count;
      return seen > was;
    };
    return { url: server.url, stack, lines, viaChain, revalidations: () => revalidations };
  }

  it.each([
    ['with X-Powered-By', true],
    ['with x-powered-by disabled', false],
  ])('a hit is answered before Express, exactly as the chain answers it (%s)', async (_label, poweredBy) => {
    const gated = await expressServer(false, poweredBy);
    const chain = await expressServer(true, poweredBy);
    await compare(gated, chain, gated.viaChain);
    // the reference: Express dispatched every request
    expect(chain.viaChain()).toBe(true);
    expect(gated.revalidations()).toBe(chain.revalidations());
  });

  // timing's settings change only what the tail adds: on one Express is enough
  if (framework === express) {
    it.each([
      ['timing with a response-time header', { timing: { responseTimeHeader: true } }],
      ['timing without Server-Timing', { timing: { serverTiming: false } }],
      ['no timing layer', { timing: false }],
    ] as const)('a hit before Express matches the chain with %s', async (_label, extra) => {
      const gated = await expressServer(false, true, extra);
      const chain = await expressServer(true, true, extra);
      await compare(gated, chain, gated.viaChain);
    });
  }

  it('a forwarded host before Express (proxy trust unknown there) goes down the chain, which answers the hit', async () => {
    const lines = new Lines();
    const stack = performanceStack(options(lines, false));
    stacks.push(stack);
    const app = framework();
    app.use(stack);
    let routed = 0;
    app.get('/fresh', (_req, res) => {
      routed++;
      res.set(ROUTES.fresh()).send(BODY);
    });
    const dispatched = spyDispatch(app);
    const server = await serve(app);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await send(`${server.url}/fresh`, agent, 'GET', {});
    const early = await send(`${server.url}/fresh`, agent, 'GET', {});
    expect([early.headers['x-cache'], dispatched.count]).toEqual(['HIT', 1]);
    const forwarded = await send(`${server.url}/fresh`, agent, 'GET', { 'x-forwarded-host': 'other.example' });
    agent.destroy();
    // trust proxy is off: the chain keys it by Host, a hit; but Express had to say so
    expect([forwarded.headers['x-cache'], dispatched.count, routed]).toEqual(['HIT', 2, 1]);
  });
});

describe('early hits inside the stack', () => {
  it('Express with a middleware before the stack: a hit is answered first thing in the stack, as the chain answers it', async () => {
    async function expressServer(chain: boolean) {
      const lines = new Lines();
      const stack = performanceStack(options(lines, chain));
      stacks.push(stack);
      const app = express();
      const closeListeners: number[] = [];
      app.use((_req, res, next) => {
        res.setHeader('X-Before', 'yes');
        res.on('finish', () => closeListeners.push(res.listenerCount('close')));
        next();
      });
      app.use(stack);
      expressRoutes(app);
      const server = await serve(app);
      return { url: server.url, stack, lines, closeListeners };
    }
    const gated = await expressServer(false);
    const chain = await expressServer(true);
    await compare(gated, chain);
    expect(chain.closeListeners).toHaveLength(STEPS.length);
    expect(gated.closeListeners.map((n, i) => n === (chain.closeListeners[i] as number) - 1)).toEqual(
      STEPS.map((s) => s.early),
    );
  });

  it('Koa: a hit is answered first thing in the stack, exactly as the chain answers it', async () => {
    async function koaServer(chain: boolean) {
      const lines = new Lines();
      const stack = koaStack(options(lines, chain));
      stacks.push(stack);
      const app = new Koa();
      const closeListeners: number[] = [];
      app.use(async (ctx, next) => {
        await next();
        closeListeners.push(ctx.res.listenerCount('close'));
      });
      app.use(stack);
      const router = new Router();
      router.get('/fresh', (ctx) => {
        ctx.set(ROUTES.fresh());
        ctx.body = BODY;
      });
      router.get('/vary', (ctx) => {
        ctx.set(ROUTES.vary());
        ctx.body = `lang ${ctx.get('accept-language')}`;
      });
      router.get('/revalidate', (ctx) => {
        ctx.set(ROUTES.revalidate());
        if (ctx.get('if-none-match') === '"r1"') ctx.status = 304;
        else ctx.body = 'revalidated';
      });
      router.get('/plain', (ctx) => {
        ctx.body = 'plain';
      });
      app.use(router.routes());
      const server = await serve(app.callback());
      return { url: server.url, stack: stack.stack, lines, closeListeners };
    }
    const gated = await koaServer(false);
    const chain = await koaServer(true);
    await compare(gated, chain);
    // timing's `close` listener: on the response when the chain ran, not after an early hit
    expect(chain.closeListeners).toHaveLength(STEPS.length);
    expect(gated.closeListeners.map((n, i) => n === (chain.closeListeners[i] as number) - 1)).toEqual(
      STEPS.map((s) => s.early),
    );
  });

  it('node:http: a hit is answered first thing in the stack, exactly as the chain answers it', async () => {
    async function nodeServer(chain: boolean) {
      const lines = new Lines();
      const stack = nodeStack(options(lines, chain));
      stacks.push(stack);
      const listener = createListener(stack, (req, res) => {
        const path = (req.url ?? '/').split('?')[0] as string;
        setRoute(req, path);
        const lang = req.headers['accept-language'];
        if (path === '/fresh') {
          res.writeHead(200, ROUTES.fresh()).end(BODY);
        } else if (path === '/vary') {
          res.writeHead(200, ROUTES.vary()).end(`lang ${lang}`);
        } else if (path === '/revalidate') {
          if (req.headers['if-none-match'] === '"r1"') res.writeHead(304, ROUTES.revalidate()).end();
          else res.writeHead(200, ROUTES.revalidate()).end('revalidated');
        } else {
          res.end('plain');
        }
      });
      const closeListeners: number[] = [];
      const server = await serve((req, res) => {
        res.on('finish', () => closeListeners.push(res.listenerCount('close')));
        listener(req, res);
      });
      return { url: server.url, stack, lines, closeListeners };
    }
    const gated = await nodeServer(false);
    const chain = await nodeServer(true);
    await compare(gated, chain);
    expect(chain.closeListeners).toHaveLength(STEPS.length);
    expect(gated.closeListeners.map((n, i) => n === (chain.closeListeners[i] as number) - 1)).toEqual(
      STEPS.map((s) => s.early),
    );
  });
});
