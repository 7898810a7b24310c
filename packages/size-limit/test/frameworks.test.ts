/**
 * The same limiter under Koa (`toKoa`) and plain node:http (`withMiddleware`): bodies
 * below the limit reach handlers that read the request as a stream, bodies over it get
 * the problem+json 413 (by Content-Length and mid-stream), and the route override works.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import Router from '@koa/router';
import { toKoa, withMiddleware } from '@perfstack/core';
import { type SizeLimiter, sizeLimit } from '@perfstack/size-limit';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { openRequest, streamBody } from './client.js';

const KB = 1024;
const MB = 1024 * KB;

async function readAll(req: IncomingMessage): Promise<number> {
  let bytes = 0;
  for await (const chunk of req) bytes += (chunk as Buffer).length;
  return bytes;
}

/** Starts an app behind a 64 KB limiter with `/stream` and `/big/stream` (4 MB route limit). */
type Start = (limiter: SizeLimiter) => Promise<TestServer>;

const startKoa: Start = async (limiter) => {
  const app = new Koa();
  app.silent = true;
  const router = new Router();
  app.use(toKoa(limiter));
  router.post('/stream', async (ctx) => {
    ctx.body = { bytes: await readAll(ctx.req) };
  });
  router.post('/big/stream', toKoa(sizeLimit.route({ limit: '4mb' })), async (ctx) => {
    ctx.body = { bytes: await readAll(ctx.req) };
  });
  app.use(router.routes());
  return listen(app.callback());
};

const startNode: Start = async (limiter) => {
  const big = sizeLimit.route({ limit: '4mb' });
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const bytes = await readAll(req);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ bytes }));
  };
  return listen(
    withMiddleware(
      limiter,
      (req, res) => {
        if (req.url === '/big/stream') big(req, res, () => void handler(req, res));
        else return handler(req, res);
      },
      { onError: () => {} },
    ),
  );
};

for (const [name, start] of [
  ['Koa (toKoa)', startKoa],
  ['node:http (withMiddleware)', startNode],
] as const) {
  describe(name, () => {
    let server: TestServer;
    let limiter: SizeLimiter;

    beforeAll(async () => {
      limiter = sizeLimit({ limit: '64kb' });
      server = await start(limiter);
    });

    afterAll(async () => {
      await server.close();
      await limiter.close();
    });

    it('passes a body below the limit to the handler', async () => {
      const res = await request(`${server.url}/stream`, { method: 'POST', body: Buffer.alloc(60 * KB) });
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({ bytes: 60 * KB });
    });

    it('passes a GET without a body', async () => {
      const res = await request(`${server.url}/stream`, { method: 'POST' });
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({ bytes: 0 });
    });

    it('answers a Content-Length over the limit with problem+json before the body', async () => {
      const open = openRequest(`${server.url}/stream`, { headers: { 'content-length': MB } });
      const res = await open.response;
      expect(res.status).toBe(413);
      expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(res.headers.connection).toBe('close');
      expect(res.json()).toEqual({
        type: 'urn:perfstack:problem:payload-too-large',
        title: 'Payload Too Large',
        status: 413,
        detail: 'The request body of 1048576 bytes is larger than the limit of 65536 bytes.',
        code: 'PAYLOAD_TOO_LARGE',
        limit: 65536,
        contentLength: MB,
      });
    });

    it('cuts a chunked body off at the limit', async () => {
      const open = openRequest(`${server.url}/stream`, { headers: { 'transfer-encoding': 'chunked' } });
      const sent = streamBody(open, 20 * MB, 16 * KB);
      const res = await open.response;
      expect(res.status).toBe(413);
      expect(res.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 65536, received: expect.any(Number) });
      expect(await sent).toBeLessThan(20 * MB);
    });

    it('takes a larger body on the route with a raised limit', async () => {
      const res = await request(`${server.url}/big/stream`, { method: 'POST', body: Buffer.alloc(3 * MB) });
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({ bytes: 3 * MB });
      const refused = await openRequest(`${server.url}/big/stream`, { headers: { 'content-length': 5 * MB } }).response;
      expect(refused.status).toBe(413);
      expect(refused.json()).toMatchObject({ limit: 4 * MB, contentLength: 5 * MB });
    });

    it('answers 414 and 431 before the app', async () => {
      const long = await request(`${server.url}/stream?${'q'.repeat(9000)}`, { method: 'POST' });
      expect(long.status).toBe(414);
      expect(long.json()).toMatchObject({ code: 'URI_TOO_LONG', limit: 8192 });
      const headers: Record<string, string> = {};
      for (let i = 0; i < 120; i++) headers[`x-${i}`] = '1';
      const many = await request(`${server.url}/stream`, { method: 'POST', headers });
      expect(many.status).toBe(431);
      expect(many.json()).toMatchObject({ code: 'HEADERS_TOO_LARGE', limit: 100, measure: 'count' });
    });
  });
}
