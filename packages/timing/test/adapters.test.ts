import Router from '@koa/router';
import { setRoute, toKoa, UNMATCHED_ROUTE, withMiddleware } from '@perfstack/core';
import type { Timing } from '@perfstack/timing';
import express4 from 'express4';
import Koa from 'koa';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { closeAll, type FakeClock, fakeClock, quietTiming } from './support.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await closeAll();
});

type Build = (t: Timing, clock: FakeClock) => Promise<TestServer>;

/** The same app on each framework: GET /users/:id takes 12 fake ms, X-Cache HIT; anything else 404. */
const frameworks: Record<string, Build> = {
  Koa: (t, clock) => {
    const app = new Koa();
    const router = new Router();
    router.get('/users/:id', (ctx) => {
      clock.advance(12);
      ctx.set('X-Cache', 'HIT');
      ctx.body = { id: ctx.params.id };
    });
    app.use(toKoa(t));
    app.use(router.routes());
    return listen(app.callback());
  },
  'node:http': (t, clock) =>
    listen(
      withMiddleware(t, (req, res) => {
        const match = /^\/users\/([^/?]+)/.exec(req.url ?? '');
        if (match === null) {
          res.statusCode = 404;
          res.end('not found');
          return;
        }
        setRoute(req, '/users/:id');
        clock.advance(12);
        res.setHeader('X-Cache', 'HIT');
        res.setHeader('Content-Type', 'application/json');
        res.end(JSON.stringify({ id: match[1] }));
      }),
    ),
  'Express 4': (t, clock) => {
    const app = express4();
    app.use(t);
    const users = express4.Router();
    users.get('/:id', (req, res) => {
      clock.advance(12);
      res.set('X-Cache', 'HIT');
      res.json({ id: req.params.id });
    });
    app.use('/users', users); // a mounted router: the pattern is baseUrl + route path
    return listen(app as never);
  },
};

describe.each(Object.entries(frameworks))('on %s', (_name, build) => {
  it('times requests, labels them by route pattern and counts the cache hit', async () => {
    const clock = fakeClock();
    const t = quietTiming({ clock, responseTimeHeader: true });
    server = await build(t, clock);
    for (const id of ['1', '2']) {
      const res = await request(`${server.url}/users/${id}`);
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({ id });
      expect(res.headers['server-timing']).toBe('total;dur=12');
      expect(res.headers['x-response-time']).toBe('12.000ms');
      expect(res.headers['x-cache']).toBe('HIT');
    }
    const missing = await request(`${server.url}/nowhere/3`);
    expect(missing.status).toBe(404);
    expect(missing.headers['server-timing']).toBe('total;dur=0');

    const text = await t.registry.metrics();
    expect(text).toContain('http_request_duration_seconds_count{method="GET",route="/users/:id",status_code="200"} 2');
    expect(text).toContain(
      'http_request_duration_seconds_sum{method="GET",route="/users/:id",status_code="200"} 0.024',
    );
    expect(text).toContain(`http_requests_total{method="GET",route="${UNMATCHED_ROUTE}",status_code="404"} 1`);
    expect(text).not.toContain('/users/1');

    const snapshot = t.snapshot();
    expect(snapshot.windows['1m']).toMatchObject({ requests: 3, cacheHits: 2, cacheMisses: 0, cacheHitRatio: 1 });
    expect(snapshot.routes.map((r) => [r.method, r.route, r.count])).toEqual([
      ['GET', '/users/:id', 2],
      ['GET', UNMATCHED_ROUTE, 1],
    ]);
    expect(snapshot.routes[0]?.p50).toBe(12);
  });
});
