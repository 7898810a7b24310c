/**
 * Breakers behind the preset count only the app's own faults, on apps shaped unlike the
 * examples: a catch-all handler and a proxy-like `app.use` mount (no route pattern: not
 * guarded, never one shared breaker), malformed JSON from clients (a body parser's 400, even
 * when a naive Express 4 error handler turns it into a 500), and real faults (thrown errors,
 * 5xx the app writes), which still open the route's own `METHOD /pattern` breaker.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:http';
import Router from '@koa/router';
import express5 from 'express';
import express4 from 'express4';
import Koa from 'koa';
import { koaBody } from 'koa-body';
import { performanceStack } from 'perfstack';
import { performanceStack as koaStack } from 'perfstack/koa';
import { afterEach, describe, expect, it } from 'vitest';
import { createApp as createExpressExample } from '../../examples/express-api/app.js';
import { createApp as createKoaExample } from '../../examples/koa-api/app.js';
import { createApp as createNodeExample } from '../../examples/node-http/app.js';
import { listen, request, type TestServer } from '../helpers/http.js';

const quiet = { warn() {}, error() {} };
const catalogOptions = { latencyMs: 1, failureRate: 0 };
const stackOptions = {
  env: false,
  log: quiet,
  logger: { destination: { write() {} } },
  rateLimit: { limit: 100_000, window: '1m' },
} as const;

type Closer = () => Promise<void>;
const closers: Closer[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function serve(listener: ((req: IncomingMessage, res: ServerResponse) => void) | TestServer['server']) {
  const server = await listen(listener as Parameters<typeof listen>[0]);
  closers.push(() => server.close());
  return server.url;
}

type Stack = ReturnType<typeof performanceStack>;
function breakers(stack: Stack) {
  return (stack.layers.circuitBreaker?.snapshot().breakers ?? []).map((b) => [b.name, b.state, b.failures]);
}

const frameworks = [
  ['Express 5', express5],
  ['Express 4', express4 as unknown as typeof express5],
] as const;

describe.each(frameworks)('%s: a catch-all app and a proxy-like mount', (_name, express) => {
  it('one URL answers 500 throughout while another keeps answering 200: never CIRCUIT_OPEN, no breaker at all', async () => {
    const stack = performanceStack(stackOptions);
    closers.push(() => stack.close());
    const app = express();
    app.use(stack);
    // A proxy-like mount (http-proxy-middleware is an `app.use(path, handler)` like this one).
    app.use('/api', (req, res) => {
      res.status(req.path === '/down' ? 502 : 200).json({ proxied: req.path });
    });
    // A catch-all handler: no route pattern for anything it answers.
    app.use((req, res) => {
      if (req.path === '/broken') res.status(500).send('broken');
      else res.status(200).send(`page ${req.path}`);
    });
    const url = await serve(app as unknown as (req: IncomingMessage, res: ServerResponse) => void);
    for (let i = 0; i < 30; i++) {
      const broken = await request(`${url}/broken`);
      expect([broken.status, broken.text]).toEqual([500, 'broken']);
      const fine = await request(`${url}/fine/${i}`);
      expect([fine.status, fine.text]).toEqual([200, `page /fine/${i}`]);
      const down = await request(`${url}/api/down`);
      expect([down.status, down.json()]).toEqual([502, { proxied: '/down' }]);
      const up = await request(`${url}/api/up`);
      expect([up.status, up.json()]).toEqual([200, { proxied: '/up' }]);
    }
    expect(breakers(stack)).toEqual([]);
  });

  it('a wildcard catch-all route (an SPA fallback) is not one shared breaker either', async () => {
    const stack = performanceStack(stackOptions);
    closers.push(() => stack.close());
    const app = express();
    app.use(stack);
    const catchAll = express === express5 ? '/*splat' : '*';
    app.get(catchAll, (req, res) => {
      if (req.path === '/broken') res.status(500).send('broken');
      else res.send('index.html');
    });
    const url = await serve(app as unknown as (req: IncomingMessage, res: ServerResponse) => void);
    for (let i = 0; i < 20; i++) {
      expect((await request(`${url}/broken`)).status).toBe(500);
      expect((await request(`${url}/page/${i}`)).text).toBe('index.html');
    }
    expect(breakers(stack)).toEqual([]);
    // Its label is still the route's own pattern, one series for the catch-all.
    const metrics = await stack.registry.metrics();
    expect(metrics).toContain(`route="${catchAll}"`);
    expect(metrics).not.toContain('route="/page');
  });

  it('a named route still opens its own METHOD /pattern breaker on real faults; other methods and routes keep answering', async () => {
    const stack = performanceStack(stackOptions);
    closers.push(() => stack.close());
    const app = express();
    app.use(stack);
    app.post('/orders/:id', () => {
      throw new Error('database down');
    });
    app.get('/orders/:id', (req, res) => {
      res.json({ id: req.params.id });
    });
    app.use((_req, res) => {
      res.status(500).send('catch-all');
    });
    const url = await serve(app as unknown as (req: IncomingMessage, res: ServerResponse) => void);
    for (let i = 0; i < 5; i++) expect((await request(`${url}/orders/${i}`, { method: 'POST' })).status).toBe(500);
    const open = await request(`${url}/orders/9`, { method: 'POST' });
    expect(open.status).toBe(503);
    expect(open.json<{ code: string }>().code).toBe('CIRCUIT_OPEN');
    expect((await request(`${url}/orders/9`)).json()).toEqual({ id: '9' });
    expect((await request(`${url}/elsewhere`)).status).toBe(500);
    expect(breakers(stack)).toEqual([
      ['POST /orders/:id', 'open', 5],
      ['GET /orders/:id', 'closed', 0],
    ]);
  });

  it('50 malformed-JSON POSTs never open a breaker, even through a naive error handler that answers 500', async () => {
    const stack = performanceStack(stackOptions);
    closers.push(() => stack.close());
    const app = express();
    app.use(stack);
    app.post('/items', express.json(), (_req, res) => {
      res.status(201).json({ created: true });
    });
    app.get('/items', (_req, res) => {
      res.json([]);
    });
    app.use((_error: unknown, _req: unknown, res: express5.Response, _next: unknown) => {
      res.status(500).json({ error: 'something went wrong' });
    });
    const url = await serve(app as unknown as (req: IncomingMessage, res: ServerResponse) => void);
    for (let i = 0; i < 50; i++) {
      const res = await request(`${url}/items`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"name": "broken',
      });
      expect([res.status, res.json()]).toEqual([500, { error: 'something went wrong' }]);
    }
    expect((await request(`${url}/items`)).status).toBe(200);
    const created = await request(`${url}/items`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name": "ok"}',
    });
    expect(created.status).toBe(201);
    expect(breakers(stack)).toEqual([
      ['POST /items', 'closed', 0],
      ['GET /items', 'closed', 0],
    ]);
  });
});

describe("the stack's own refusals", () => {
  it('a route-level breaker answering 503 CIRCUIT_OPEN is never a failure of the route on the global breaker', async () => {
    const { circuitBreaker } = await import('perfstack');
    const stack = performanceStack(stackOptions);
    closers.push(() => stack.close());
    const inner = circuitBreaker.route({ failureThreshold: 1, resetTimeout: '30s' });
    closers.push(() => inner.close());
    const app = express5();
    app.use(stack);
    app.get('/reports/:id', inner, (_req, res) => {
      res.status(500).json({ error: 'report engine down' });
    });
    const url = await serve(app as unknown as (req: IncomingMessage, res: ServerResponse) => void);
    expect((await request(`${url}/reports/1`)).status).toBe(500);
    for (let i = 2; i <= 10; i++) {
      const res = await request(`${url}/reports/${i}`);
      expect([res.status, res.json<{ code: string }>().code]).toEqual([503, 'CIRCUIT_OPEN']);
    }
    // The global breaker saw one fault of the app (the 500) and nine refusals that are not the app's.
    expect(breakers(stack)).toEqual([['GET /reports/:id', 'closed', 1]]);
    expect(inner.snapshot().breakers.map((b) => [b.name, b.state])).toEqual([['GET /reports/:id', 'open']]);
  });
});

describe('the Express example', () => {
  it('answers 50 malformed-JSON POSTs with 400 problem+json and over-limit bodies with 413; no breaker opens', async () => {
    const { app, stack } = createExpressExample({
      redis: '',
      stackOptions: { ...stackOptions },
      catalogOptions: { latencyMs: 1, failureRate: 0 },
    });
    closers.push(() => stack.close());
    const url = await serve(app);
    for (let i = 0; i < 50; i++) {
      const res = await request(`${url}/products`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"name": ',
      });
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(res.json()).toEqual({
        type: 'about:blank',
        title: 'Bad Request',
        status: 400,
        detail: expect.stringMatching(/JSON/),
      });
    }
    // Between the app's 10 kB parser limit and the stack's 1 MB: the app's own 413.
    const big = await request(`${url}/products`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(20_000) }),
    });
    expect(big.status).toBe(413);
    expect(big.json()).toEqual({
      type: 'about:blank',
      title: 'Payload Too Large',
      status: 413,
      detail: 'request entity too large',
    });
    expect((await request(`${url}/products`)).status).toBe(200);
    const snapshot = stack.layers.circuitBreaker?.snapshot().breakers ?? [];
    expect(snapshot.filter((b) => b.state !== 'closed' || b.failures > 0)).toEqual([]);
    expect(snapshot.map((b) => b.name).sort()).toEqual(['GET /products', 'POST /products']);
  });
});

describe.each([
  ['Koa', 'application/problem+json', { title: 'Bad Request', detail: 'the request body is not valid JSON' }],
  ['node:http', 'application/problem+json; charset=utf-8', null],
] as const)('the %s example', (name, contentType, koaBody400) => {
  it('answers 50 malformed-JSON POSTs with 400 problem+json and an over-limit body with 413; no breaker opens', async () => {
    const built =
      name === 'Koa'
        ? (() => {
            const { app, stack } = createKoaExample({ redis: '', stackOptions: { ...stackOptions }, catalogOptions });
            return { listener: createServer(app.callback()), stack: stack.stack, close: () => stack.close() };
          })()
        : (() => {
            const { listener, stack } = createNodeExample({
              redis: '',
              stackOptions: { ...stackOptions },
              catalogOptions,
            });
            return { listener, stack, close: () => stack.close() };
          })();
    closers.push(built.close);
    const url = await serve(built.listener);
    for (let i = 0; i < 50; i++) {
      const res = await request(`${url}/products`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"name": ',
      });
      expect(res.status).toBe(400);
      expect(res.headers['content-type']).toBe(contentType);
      expect(res.json()).toEqual(
        koaBody400 === null
          ? {
              type: 'urn:perfstack:problem:bad-request',
              title: 'Bad Request',
              status: 400,
              detail: 'The request could not be processed.',
              code: 'BAD_REQUEST',
            }
          : { type: 'about:blank', status: 400, ...koaBody400 },
      );
    }
    const big = await request(`${url}/products`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x'.repeat(20_000) }),
    });
    expect(big.status).toBe(413);
    expect(big.json()).toEqual(
      name === 'Koa'
        ? { type: 'about:blank', title: 'Payload Too Large', status: 413, detail: 'request entity too large' }
        : {
            type: 'urn:perfstack:problem:payload-too-large',
            title: 'Payload Too Large',
            status: 413,
            detail: 'The request could not be processed.',
            code: 'PAYLOAD_TOO_LARGE',
          },
    );
    expect((await request(`${url}/products`)).status).toBe(200);
    const snapshot = built.stack.layers.circuitBreaker?.snapshot().breakers ?? [];
    expect(snapshot.filter((b) => b.state !== 'closed' || b.failures > 0)).toEqual([]);
    expect(snapshot.map((b) => b.name).sort()).toEqual(['GET /products', 'POST /products']);
  });
});

describe('Koa', () => {
  it('50 malformed-JSON POSTs (koa-body, status 400) never open a breaker; a catch-all 500 is not guarded', async () => {
    const stack = koaStack(stackOptions);
    closers.push(() => stack.close());
    const app = new Koa();
    app.silent = true;
    app.use(stack);
    const router = new Router();
    router.post('/items', koaBody(), (ctx) => {
      ctx.status = 201;
      ctx.body = { created: true };
    });
    app.use(router.routes());
    app.use((ctx) => {
      ctx.status = ctx.path === '/broken' ? 500 : 200;
      ctx.body = 'catch-all';
    });
    const url = await serve(createServer(app.callback()));
    for (let i = 0; i < 50; i++) {
      const res = await request(`${url}/items`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"name": ',
      });
      expect(res.status).toBe(400);
      expect((await request(`${url}/broken`)).status).toBe(500);
    }
    expect((await request(`${url}/fine`)).status).toBe(200);
    expect(breakers(stack.stack)).toEqual([['POST /items', 'closed', 0]]);
  });
});
