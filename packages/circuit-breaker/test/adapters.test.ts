/**
 * The same middleware on Koa 3 (through core's `toKoa`) and plain node:http (through core's
 * `withMiddleware`): open circuit, time budget with a discarded late response, bulkhead.
 */
import type http from 'node:http';
import Router from '@koa/router';
import { circuitBreaker } from '@perfstack/circuit-breaker';
import { setRoute, toKoa, withMiddleware } from '@perfstack/core';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(listener: http.RequestListener): Promise<string> {
  const server = await listen(listener);
  servers.push(server);
  return server.url;
}

describe('Koa', () => {
  it('resolves @koa/router patterns before the router runs and opens per route with 503 CIRCUIT_OPEN', async () => {
    const breaker = circuitBreaker({ failureThreshold: 2, resetTimeout: '10s', overload: false });
    const app = new Koa();
    const router = new Router();
    router.get('/users/:id', (ctx) => {
      ctx.status = 500;
      ctx.body = { error: 'down' };
    });
    router.get('/ok', (ctx) => {
      ctx.body = 'ok';
    });
    app.use(toKoa(breaker));
    app.use(router.routes());
    const url = await serve(app.callback());
    for (const id of [1, 2]) expect((await request(`${url}/users/${id}`)).status).toBe(500);
    const open = await request(`${url}/users/4`);
    expect(open.status).toBe(503);
    expect(open.headers['retry-after']).toBe('10');
    expect(open.json<{ code: string }>().code).toBe('CIRCUIT_OPEN');
    expect((await request(`${url}/ok`)).text).toBe('ok');
    // A path no route matches is not guarded: no breaker for it.
    expect((await request(`${url}/nowhere`)).status).toBe(404);
    expect(
      breaker
        .snapshot()
        .breakers.map((b) => [b.name, b.state])
        .sort(),
    ).toEqual([
      ['GET /ok', 'closed'],
      ['GET /users/:id', 'open'],
    ]);
    await breaker.close();
  });

  it('504 TIMEOUT with the late ctx.body discarded, no crash', async () => {
    const breaker = circuitBreaker({ timeout: 80, overload: false });
    let lateDone = false;
    const app = new Koa();
    const router = new Router();
    router.get('/slow', async (ctx) => {
      await new Promise((r) => setTimeout(r, 200));
      ctx.set('X-Late', '1');
      ctx.body = { late: true };
      lateDone = true;
    });
    app.use(toKoa(breaker));
    app.use(router.routes());
    const url = await serve(app.callback());
    const res = await request(`${url}/slow`);
    expect(res.status).toBe(504);
    expect(res.headers['x-late']).toBeUndefined();
    expect(res.json<{ code: string }>().code).toBe('TIMEOUT');
    await waitFor(() => lateDone);
    await new Promise((r) => setTimeout(r, 20));
    expect((await request(`${url}/slow`)).status).toBe(504);
    await breaker.close();
  });
});

describe('node:http', () => {
  it('guards a plain listener: 5xx opens, 503 CIRCUIT_OPEN follows; setRoute names the breaker', async () => {
    const breaker = circuitBreaker({ failureThreshold: 2, overload: false });
    const url = await serve(
      withMiddleware(
        (req, res, next) => {
          if (req.url?.startsWith('/orders/')) setRoute(req, '/orders/:id');
          breaker(req, res, next);
        },
        (req, res) => {
          res.statusCode = req.url?.startsWith('/orders/') ? 500 : 200;
          res.end('answer');
        },
      ),
    );
    expect((await request(`${url}/orders/1`)).status).toBe(500);
    expect((await request(`${url}/orders/2`)).status).toBe(500);
    const open = await request(`${url}/orders/3`);
    expect(open.status).toBe(503);
    expect(open.json<{ code: string }>().code).toBe('CIRCUIT_OPEN');
    expect((await request(`${url}/other`)).status).toBe(200);
    expect(
      breaker
        .snapshot()
        .breakers.map((b) => [b.name, b.state])
        .sort(),
    ).toEqual([['GET /orders/:id', 'open']]);
    await breaker.close();
  });

  it('setRoute inside the handler: the first response is judged on its route, later requests are guarded from the start', async () => {
    const breaker = circuitBreaker({ failureThreshold: 1, overload: false });
    let handled = 0;
    const url = await serve(
      withMiddleware(breaker, (req, res) => {
        handled++;
        if (req.url?.startsWith('/orders/')) setRoute(req, '/orders/:id');
        res.statusCode = req.url?.startsWith('/orders/') ? 500 : 200;
        res.end('answer');
      }),
    );
    expect((await request(`${url}/orders/1`)).status).toBe(500);
    const open = await request(`${url}/orders/2`);
    expect(open.status).toBe(503);
    expect(open.json<{ code: string }>().code).toBe('CIRCUIT_OPEN');
    expect(handled).toBe(1);
    expect((await request(`${url}/other`)).status).toBe(200);
    expect(breaker.snapshot().breakers.map((b) => [b.name, b.state, b.failures])).toEqual([
      ['GET /orders/:id', 'open', 1],
    ]);
    await breaker.close();
  });

  it('the route option of withMiddleware names the route before the stack runs', async () => {
    const breaker = circuitBreaker({ failureThreshold: 1, overload: false });
    const url = await serve(
      withMiddleware(
        breaker,
        (_req, res) => {
          res.statusCode = 500;
          res.end();
        },
        { route: (req) => (req.url?.startsWith('/orders/') ? '/orders/:id' : undefined) },
      ),
    );
    expect((await request(`${url}/orders/1`)).status).toBe(500);
    expect((await request(`${url}/orders/2`)).status).toBe(503);
    // No pattern: not guarded, however often it fails.
    for (let i = 0; i < 3; i++) expect((await request(`${url}/other/${i}`)).status).toBe(500);
    expect(breaker.snapshot().breakers.map((b) => b.name)).toEqual(['GET /orders/:id']);
    await breaker.close();
  });

  it('a thrown error in the listener is a 500 and counts as a failure', async () => {
    const breaker = circuitBreaker({ failureThreshold: 1, overload: false });
    const url = await serve(
      withMiddleware(
        breaker,
        () => {
          throw new Error('bug');
        },
        { onError() {}, route: () => '/x' },
      ),
    );
    expect((await request(`${url}/x`)).status).toBe(500);
    expect((await request(`${url}/x`)).status).toBe(503);
    await breaker.close();
  });

  it('504 TIMEOUT and the late res.end is discarded; bulkhead 503 OVERLOADED', async () => {
    const breaker = circuitBreaker({ timeout: 80, maxConcurrent: 1, overload: false });
    let late: unknown = 'pending';
    const url = await serve(
      withMiddleware(
        breaker,
        (req, res) => {
          setTimeout(
            () => {
              try {
                res.writeHead(200, { 'Content-Type': 'text/plain' });
                res.end('late');
                late = undefined;
              } catch (error) {
                late = error;
              }
            },
            req.url === '/slow' ? 200 : 0,
          );
        },
        { route: () => '/:page' },
      ),
    );
    const slow = request(`${url}/slow`);
    await new Promise((r) => setTimeout(r, 20));
    const full = await request(`${url}/fast`);
    expect(full.status).toBe(503);
    expect(full.json<{ code: string }>().code).toBe('OVERLOADED');
    const timedOut = await slow;
    expect(timedOut.status).toBe(504);
    await waitFor(() => late !== 'pending');
    expect(late).toBeUndefined();
    expect((await request(`${url}/fast`)).status).toBe(200);
    await breaker.close();
  });
});
