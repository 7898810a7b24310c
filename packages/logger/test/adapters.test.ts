/**
 * The same logger under Koa (`toKoa`) and plain `node:http` (`withMiddleware`): request
 * id, route pattern, levels and redacted errors.
 */
import type { IncomingMessage } from 'node:http';
import Router from '@koa/router';
import { setRoute, toKoa, withMiddleware } from '@perfstack/core';
import { accessLog } from '@perfstack/logger';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request } from '../../../test/helpers/http.js';
import { Capture } from './capture.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('Koa (toKoa)', () => {
  it('logs route, id, levels, redacted headers and a recorded error', async () => {
    const out = new Capture();
    const log = accessLog({ destination: out });
    const app = new Koa();
    app.silent = true;
    app.on('error', (error: unknown, ctx: { req: IncomingMessage }) => log.recordError(ctx.req, error));
    app.use(toKoa(log));
    const router = new Router();
    router.get('/users/:id', (ctx) => {
      (ctx.req as IncomingMessage & { log: { info(msg: string): void } }).log.info('koa handler');
      ctx.body = { id: ctx.params.id };
    });
    router.get('/fail', () => {
      throw new Error('db said password=KoaSecret12345');
    });
    router.get('/missing', (ctx) => {
      ctx.status = 404;
    });
    app.use(router.routes());
    const server = await listen(app.callback());
    cleanups.push(async () => {
      await server.close();
      await log.close();
    });

    const ok = await request(`${server.url}/users/3`, { headers: { authorization: 'Bearer KoaBearer123456' } });
    expect(ok.status).toBe(200);
    expect(ok.json()).toEqual({ id: '3' });
    expect(ok.headers['x-request-id']).toMatch(UUID);
    const fail = await request(`${server.url}/fail`);
    expect(fail.status).toBe(500);
    const missing = await request(`${server.url}/missing`);
    expect(missing.status).toBe(404);

    const lines = await out.waitForAccessLines(3);
    const byUrl = Object.fromEntries(lines.map((l) => [l.req?.url, l]));
    expect(byUrl['/users/3']?.route).toBe('/users/:id');
    expect(byUrl['/users/3']?.level).toBe(30);
    expect(byUrl['/users/3']?.reqId).toBe(ok.headers['x-request-id']);
    expect(byUrl['/users/3']?.req?.headers.authorization).toBe('[REDACTED]');
    expect(byUrl['/fail']?.level).toBe(50);
    expect(byUrl['/fail']?.route).toBe('/fail');
    expect(byUrl['/fail']?.err?.message).toBe('db said password=[REDACTED]');
    expect(byUrl['/missing']?.level).toBe(40);
    expect(out.lines().find((l) => l.msg === 'koa handler')?.reqId).toBe(ok.headers['x-request-id']);
    expect(out.raw).not.toContain('KoaSecret12345');
    expect(out.raw).not.toContain('KoaBearer123456');
  });
});

describe('node:http (withMiddleware)', () => {
  it('logs route, id, levels and a recorded error', async () => {
    const out = new Capture();
    const log = accessLog({ destination: out });
    const listener = withMiddleware(
      log,
      (req, res) => {
        if (req.url?.startsWith('/orders/')) {
          setRoute(req, '/orders/:id');
          res.setHeader('content-type', 'application/json');
          res.end('{"ok":true}');
          return;
        }
        throw new Error(
          `cannot handle ${req.url} with token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJub2RlIn0.c2lnbmF0dXJlLW5vZGU`,
        );
      },
      { onError: (error, req) => log.recordError(req, error) },
    );
    const server = await listen(listener);
    cleanups.push(async () => {
      await server.close();
      await log.close();
    });
    const ok = await request(`${server.url}/orders/5`, { headers: { 'x-request-id': 'node-req-1' } });
    expect(ok.status).toBe(200);
    expect(ok.headers['x-request-id']).toBe('node-req-1');
    const fail = await request(`${server.url}/other`);
    expect(fail.status).toBe(500);
    expect(fail.headers['content-type']).toBe('application/problem+json; charset=utf-8');

    const lines = await out.waitForAccessLines(2);
    const byUrl = Object.fromEntries(lines.map((l) => [l.req?.url, l]));
    expect(byUrl['/orders/5']).toMatchObject({ level: 30, route: '/orders/:id', reqId: 'node-req-1' });
    expect(byUrl['/other']).toMatchObject({ level: 50, route: 'unmatched', msg: 'request errored' });
    expect(byUrl['/other']?.err?.message).toBe('cannot handle /other with token [REDACTED]');
    expect(out.raw).not.toContain('eyJzdWIiOiJub2RlIn0');
  });
});
