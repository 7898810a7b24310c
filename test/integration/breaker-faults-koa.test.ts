/**
 * The breaker on Koa sees the error a request failed with, even when an error middleware
 * placed after the stack answers it with another status (issue 15, point 2): a body parser's
 * 400 (or a `ctx.throw(404)`) that a naive handler turns into a 500 is a client's error and
 * never counts against the route's breaker, as on Express; an error with no 4xx status (or a
 * 5xx) still does. Errors are seen from the app's second request on (core's koa-errors.ts),
 * so each app gets one ordinary request first.
 */
import { createServer } from 'node:http';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import Koa from 'koa';
import { performanceStack as koaStack } from 'perfstack/koa';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request } from '../helpers/http.js';

const quiet = { warn() {}, error() {} };
const stackOptions = {
  env: false,
  log: quiet,
  logger: { destination: { write() {} } },
  rateLimit: { limit: 100_000, window: '1m' },
  circuitBreaker: { failureThreshold: 5, resetTimeout: '1h' },
} as const;

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** An app with the naive error middleware right after the stack: every error becomes a 500. */
async function naiveApp() {
  const stack = koaStack(stackOptions);
  closers.push(() => stack.close());
  const app = new Koa();
  app.silent = true;
  app.use(stack);
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch {
      ctx.status = 500;
      ctx.body = { error: 'something went wrong' };
    }
  });
  app.use(bodyParser());
  const router = new Router();
  router.post('/items', (ctx) => {
    ctx.status = 201;
    ctx.body = { created: (ctx.request as { body?: unknown }).body };
  });
  router.get('/items/:id', (ctx) => {
    if (ctx.params.id === 'missing') ctx.throw(404, 'no such item');
    if (ctx.params.id === 'crash') throw new Error('the database is down');
    ctx.body = { id: ctx.params.id };
  });
  app.use(router.routes());
  const server = await listen(createServer(app.callback()));
  closers.push(() => server.close());
  const breakers = () =>
    (stack.stack.layers.circuitBreaker?.snapshot().breakers ?? []).map((b) => [b.name, b.state, b.failures]);
  expect((await request(`${server.url}/items/1`)).status).toBe(200);
  return { url: server.url, breakers };
}

const malformed = (url: string) =>
  request(`${url}/items`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"name": ' });

describe('Koa: an error middleware after the stack that answers 500', () => {
  it('30 malformed-JSON POSTs (the body parser’s 400, answered 500) never open the breaker', async () => {
    const { url, breakers } = await naiveApp();
    for (let i = 0; i < 30; i++) {
      const res = await malformed(url);
      expect(res.status).toBe(500);
      expect(res.json()).toEqual({ error: 'something went wrong' });
    }
    const good = await request(`${url}/items`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name":"a"}',
    });
    expect(good.status).toBe(201);
    expect(breakers()).toEqual([
      ['GET /items/:id', 'closed', 0],
      ['POST /items', 'closed', 0],
    ]);
  });

  it('ctx.throw(404) answered 500 is not a fault; a thrown error without a status is', async () => {
    const { url, breakers } = await naiveApp();
    for (let i = 0; i < 10; i++) expect((await request(`${url}/items/missing`)).status).toBe(500);
    expect(breakers()).toEqual([['GET /items/:id', 'closed', 0]]);
    for (let i = 0; i < 5; i++) expect((await request(`${url}/items/crash`)).status).toBe(500);
    expect(breakers()).toEqual([['GET /items/:id', 'open', 5]]);
    const refused = await request(`${url}/items/1`);
    expect(refused.status).toBe(503);
    expect(refused.json()).toMatchObject({ code: 'CIRCUIT_OPEN' });
  });
});
