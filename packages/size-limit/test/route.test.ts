/**
 * Limits by content type and by route: `limits`, `sizeLimit.route()` raising or lowering
 * the limit and the body timeout, a route override alone, one placed too late, and an
 * unread body over the limit (the connection is closed rather than drained).
 */
import http, { type RequestListener } from 'node:http';
import { type PerfstackLogger, withMiddleware } from '@perfstack/core';
import { type SizeLimiter, sizeLimit } from '@perfstack/size-limit';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { openRequest } from './client.js';

const KB = 1024;
const MB = 1024 * KB;

const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0)) await close();
});

async function serve(app: RequestListener | express.Express, ...limiters: SizeLimiter[]): Promise<TestServer> {
  const server = await listen(app as RequestListener);
  closers.push(() => server.close());
  for (const limiter of limiters) closers.push(() => limiter.close());
  return server;
}

function streamRoute(req: http.IncomingMessage, res: http.ServerResponse): void {
  let bytes = 0;
  req.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ bytes }));
  });
}

const post = (url: string, type: string, size: number, agent?: http.Agent) =>
  request(url, { method: 'POST', headers: { 'content-type': type }, body: Buffer.alloc(size, 0x61), agent });

describe('limits by content type', () => {
  it('applies the exact type, then type/*, then limit', async () => {
    const limiter = sizeLimit({
      limit: '64kb',
      limits: { 'application/json': '1kb', 'multipart/*': '2mb', 'Text/Plain': '10kb' },
    });
    const app = express();
    app.use(limiter);
    app.post('/', streamRoute);
    const { url } = await serve(app, limiter);
    expect((await post(url, 'application/json; charset=utf-8', 1024)).status).toBe(200);
    expect((await post(url, 'application/json; charset=utf-8', 1025)).json()).toMatchObject({
      status: 413,
      limit: 1024,
    });
    expect((await post(url, 'multipart/form-data; boundary=x', MB)).status).toBe(200);
    expect((await post(url, 'TEXT/PLAIN', 11 * KB)).json()).toMatchObject({ limit: 10 * KB });
    expect((await post(url, 'application/octet-stream', 65 * KB)).json()).toMatchObject({ limit: 64 * KB });
    expect((await post(url, 'application/octet-stream', 63 * KB)).status).toBe(200);
  });
});

describe('sizeLimit.route()', () => {
  it('lowers the limit for one route', async () => {
    const limiter = sizeLimit({ limit: '1mb' });
    const app = express();
    app.use(limiter);
    app.post('/tiny', sizeLimit.route({ limit: 100 }), streamRoute);
    app.post('/normal', streamRoute);
    const { url } = await serve(app, limiter);
    expect((await post(`${url}/tiny`, 'text/plain', 101)).json()).toMatchObject({ status: 413, limit: 100 });
    expect((await post(`${url}/normal`, 'text/plain', 101)).status).toBe(200);
    // Refusals are counted by the stack's limiter, which armed the guard.
    expect(limiter.stats().rejected.PAYLOAD_TOO_LARGE).toBe(1);
  });

  it('takes per-type limits that win over its own limit', async () => {
    const limiter = sizeLimit({ limit: '1kb' });
    const app = express();
    app.use(limiter);
    app.post('/mixed', sizeLimit.route({ limit: '8kb', limits: { 'image/*': '2mb' } }), streamRoute);
    const { url } = await serve(app, limiter);
    expect((await post(`${url}/mixed`, 'image/png', MB)).status).toBe(200);
    expect((await post(`${url}/mixed`, 'text/plain', 9 * KB)).json()).toMatchObject({ limit: 8 * KB });
    expect((await post(`${url}/mixed`, 'text/plain', 7 * KB)).status).toBe(200);
  });

  it('changes the body timeout for one route', async () => {
    const limiter = sizeLimit({ bodyTimeout: '10s' });
    const app = express();
    app.use(limiter);
    app.post('/quick', sizeLimit.route({ bodyTimeout: 100 }), streamRoute);
    const { url } = await serve(app, limiter);
    const open = openRequest(`${url}/quick`, { headers: { 'transfer-encoding': 'chunked' } });
    open.req.write('a');
    const res = await open.response;
    expect(res.status).toBe(408);
    expect(res.json()).toMatchObject({ code: 'BODY_TIMEOUT', timeout: 100, received: 1 });
  });

  it('guards a route by itself when no stack limiter ran', async () => {
    const route = sizeLimit.route({ limit: '2kb' });
    const { url } = await serve(
      withMiddleware(route, streamRoute, { onError: () => {} }),
      route as unknown as SizeLimiter,
    );
    expect((await post(url, 'text/plain', 2048)).json()).toEqual({ bytes: 2048 });
    const refused = await post(url, 'text/plain', 2049);
    expect(refused.status).toBe(413);
    expect(refused.json()).toMatchObject({ limit: 2048, contentLength: 2049 });
    expect(route.stats().rejected.PAYLOAD_TOO_LARGE).toBe(1);
  });

  it('warns once when it runs after the body is being read, and still enforces a lower limit', async () => {
    const warnings: string[] = [];
    const logger: PerfstackLogger = { warn: (message) => warnings.push(message), error: () => {} };
    const limiter = sizeLimit({ limit: '1mb', logger });
    const app = express();
    app.use(limiter);
    app.post('/late', express.raw({ type: '*/*', limit: '10mb' }), sizeLimit.route({ limit: '4mb' }), (req, res) => {
      res.json({ bytes: (req.body as Buffer).length });
    });
    const { url } = await serve(app, limiter);
    const refused = await post(`${url}/late`, 'text/plain', 2 * MB);
    expect(refused.json()).toMatchObject({ status: 413, limit: MB });
    expect((await post(`${url}/late`, 'text/plain', 10)).json()).toEqual({ bytes: 10 });
    await post(`${url}/late`, 'text/plain', 10);
    expect(warnings).toEqual([
      'SIZE_LIMIT_ROUTE_AFTER_READ: sizeLimit.route() ran after the body was being read, so it could not raise the limit; put it before the body parser',
    ]);
  });
});

describe('bodies nobody reads', () => {
  it('closes the connection after answering a request whose unread body is over the limit', async () => {
    const limiter = sizeLimit({ limit: '64kb' });
    const app = express();
    app.use(limiter);
    app.post('/ignore', (_req, res) => {
      res.json({ ignored: true });
    });
    app.post('/upload', sizeLimit.route({ limit: '10mb' }), (_req, res) => {
      res.json({ ignored: true });
    });
    const { url } = await serve(app, limiter);
    const agent = new http.Agent({ keepAlive: true });
    try {
      // Not read, so not refused; but Node would drain 8 MB to keep the connection: it closes instead.
      const open = openRequest(`${url}/ignore`, { headers: { 'content-length': 8 * MB } });
      const res = await open.response;
      expect(res.status).toBe(200);
      expect(res.headers.connection).toBe('close');
      // Under the limit in force (the route raised it): the connection is kept.
      const kept = await post(`${url}/upload`, 'text/plain', 100 * KB, agent);
      expect(kept.status).toBe(200);
      expect(kept.headers.connection).toBe('keep-alive');
      const small = await post(`${url}/ignore`, 'text/plain', 10, agent);
      expect(small.headers.connection).toBe('keep-alive');
    } finally {
      agent.destroy();
    }
    expect(limiter.stats().rejected.PAYLOAD_TOO_LARGE).toBe(0);
  });
});
