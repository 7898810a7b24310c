import Router from '@koa/router';
import {
  compose,
  HttpProblemError,
  type Middleware,
  onBeforeHead,
  routeLabel,
  sendProblem,
  setRoute,
  toKoa,
  withMiddleware,
} from '@perfstack/core';
import express from 'express';
import express4 from 'express4';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';

/** Sets a header, answers /blocked itself, records the route at head time, and passes the rest on. */
const sample: Middleware = (req, res, next) => {
  res.setHeader('X-Layer', 'one');
  onBeforeHead(res, () => res.setHeader('X-Route', routeLabel(req)));
  if (req.url?.startsWith('/blocked')) {
    sendProblem(res, { code: 'FORBIDDEN', detail: 'blocked by the layer' }, req.method);
    return;
  }
  next();
};

const failing: Middleware = (req, _res, next) => {
  if (req.url === '/fail') next(new HttpProblemError({ code: 'TIMEOUT', detail: 'too slow' }));
  else next();
};

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

type Build = () => Promise<TestServer>;

const frameworks: Record<string, Build> = {
  'Express 5': () => {
    const app = express();
    app.use(compose([sample, failing]));
    app.get('/users/:id', (req, res) => {
      res.json({ id: req.params.id });
    });
    return listen(app);
  },
  'Express 4': () => {
    const app = express4();
    app.use(compose([sample, failing]));
    app.get('/users/:id', (req, res) => {
      res.json({ id: req.params.id });
    });
    return listen(app as never);
  },
  Koa: () => {
    const app = new Koa();
    app.use(toKoa(compose([sample, failing])) as never);
    const router = new Router();
    router.get('/users/:id', (ctx) => {
      ctx.body = { id: ctx.params.id };
    });
    app.use(router.routes());
    return listen(app.callback());
  },
  'node:http': () =>
    listen(
      withMiddleware(compose([sample, failing]), (req, res) => {
        const match = /^\/users\/([^/?]+)/.exec(req.url ?? '');
        if (!match) {
          res.statusCode = 404;
          res.end();
          return;
        }
        // plain node:http has no router: the app names its route
        setRoute(req, '/users/:id');
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.end(JSON.stringify({ id: match[1] }));
      }),
    ),
};

describe.each(Object.entries(frameworks))('the same middleware on %s', (_name, build) => {
  it('passes requests on with its headers and sees the route pattern', async () => {
    server = await build();
    const res = await request(`${server.url}/users/42`);
    expect(res.status).toBe(200);
    expect(res.headers['x-layer']).toBe('one');
    expect(res.headers['x-route']).toBe('/users/:id');
    expect(res.json()).toEqual({ id: '42' });
  });

  it('lets the middleware answer by itself', async () => {
    server = await build();
    const res = await request(`${server.url}/blocked`);
    expect(res.status).toBe(403);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.json()).toMatchObject({ code: 'FORBIDDEN', status: 403, detail: 'blocked by the layer' });
    expect(res.headers['x-route']).toBe('unmatched');
  });
});

describe('node:http adapter errors', () => {
  it('turns next(problem) into problem+json and a thrown error into a 500 that hides the message', async () => {
    const errors: unknown[] = [];
    server = await listen(
      withMiddleware(
        failing,
        (req) => {
          if (req.url === '/throw') throw new Error('secret database password in message');
          return Promise.reject(new Error('rejected'));
        },
        { onError: (e) => errors.push(e) },
      ),
    );
    const timeout = await request(`${server.url}/fail`);
    expect(timeout.status).toBe(504);
    expect(timeout.json()).toMatchObject({ code: 'TIMEOUT', detail: 'too slow' });
    const thrown = await request(`${server.url}/throw`);
    expect(thrown.status).toBe(500);
    expect(thrown.text).not.toContain('secret');
    expect(thrown.json()).toMatchObject({ code: 'INTERNAL_ERROR', status: 500 });
    const rejected = await request(`${server.url}/reject`);
    expect(rejected.status).toBe(500);
    expect(errors).toHaveLength(2);
  });
});

describe('compose', () => {
  it('runs layers in order and stops at the first error', async () => {
    const order: string[] = [];
    const layer =
      (name: string, fail = false): Middleware =>
      (_req, _res, next) => {
        order.push(name);
        next(fail ? new Error(name) : undefined);
      };
    const composed = compose([layer('a'), layer('b', true), layer('c')]);
    const error = await new Promise((resolve) => composed({} as never, {} as never, resolve));
    expect(order).toEqual(['a', 'b']);
    expect((error as Error).message).toBe('b');
  });

  it('treats a synchronous throw as next(error)', async () => {
    const composed = compose([
      (_req, _res, next) => next(),
      () => {
        throw new Error('boom');
      },
    ]);
    const error = await new Promise((resolve) => composed({} as never, {} as never, resolve));
    expect((error as Error).message).toBe('boom');
  });
});
