/**
 * Each limit over real HTTP on Express 5: exact problem+json bodies and headers, the
 * body left unread, and the counts in stats() and the shared registry.
 */
import http, { type IncomingMessage, type RequestListener, type ServerResponse } from 'node:http';
import { createRegistry } from '@perfstack/core';
import { type SizeLimiter, sizeLimit } from '@perfstack/size-limit';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { openRequest, sleep, streamBody } from './client.js';

const MB = 1024 * 1024;
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

/** What the stream route saw of the body. */
interface Seen {
  bytes: number;
  ended: boolean;
}

let server: TestServer | undefined;
let limiter: SizeLimiter | undefined;

afterEach(async () => {
  await server?.close();
  await limiter?.close();
  server = undefined;
  limiter = undefined;
});

/** An Express 5 app: the limiter, then a route that reads the body as a stream. */
async function start(options: Parameters<typeof sizeLimit>[0] = {}, serverOptions: http.ServerOptions = {}) {
  const seen: Seen = { bytes: 0, ended: false };
  limiter = sizeLimit(options);
  const app = express();
  app.use(limiter);
  app.get('/', (_req, res) => {
    res.json({ ok: true });
  });
  app.post('/stream', (req, res) => {
    req.on('data', (chunk: Buffer) => {
      seen.bytes += chunk.length;
    });
    req.on('end', () => {
      seen.ended = true;
      res.json({ bytes: seen.bytes });
    });
  });
  server = await listen(http.createServer(serverOptions, app as (req: IncomingMessage, res: ServerResponse) => void));
  return { url: server.url, seen, limiter };
}

describe('requests without a body', () => {
  it('pass untouched: no hooks, no listeners, no state on the request', async () => {
    limiter = sizeLimit();
    const app = express();
    app.use(limiter);
    const probe = (req: IncomingMessage) => ({
      ownPush: Object.hasOwn(req, 'push'),
      ownResume: Object.hasOwn(req, 'resume'),
      newListener: req.listenerCount('newListener'),
      guard: Object.getOwnPropertySymbols(req).some((s) => String(s).includes('sizeLimit')),
    });
    app.all('/', (req, res) => {
      res.json(probe(req));
    });
    server = await listen(app as unknown as RequestListener);
    const untouched = { ownPush: false, ownResume: false, newListener: 0, guard: false };
    expect((await request(server.url)).json()).toEqual(untouched);
    expect((await request(server.url, { method: 'POST', headers: { 'content-length': 0 } })).json()).toEqual(untouched);
    // A request with a body is armed (and nothing read it here): its guard and a listener;
    // push/resume are hooked once on IncomingMessage.prototype, never per request.
    expect((await request(server.url, { method: 'POST', body: 'x' })).json()).toEqual({
      ownPush: false,
      ownResume: false,
      newListener: 1,
      guard: true,
    });
  });
});

describe('413 PAYLOAD_TOO_LARGE', () => {
  it('answers a Content-Length over the limit before the body is sent, with Connection: close', async () => {
    const { url, seen, limiter } = await start();
    const open = openRequest(`${url}/stream`, { headers: { 'content-type': 'text/plain', 'content-length': 5 * MB } });
    const res = await open.response;
    expect(res.status).toBe(413);
    expect(res.headers['content-type']).toBe(PROBLEM_TYPE);
    expect(res.headers.connection).toBe('close');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({
      type: 'urn:perfstack:problem:payload-too-large',
      title: 'Payload Too Large',
      status: 413,
      detail: 'The request body of 5242880 bytes is larger than the limit of 1048576 bytes.',
      code: 'PAYLOAD_TOO_LARGE',
      limit: MB,
      contentLength: 5 * MB,
    });
    expect(seen).toEqual({ bytes: 0, ended: false });
    expect(limiter.stats().rejected.PAYLOAD_TOO_LARGE).toBe(1);
  });

  it('answers a Content-Length body that is sent anyway, and the client reads the 413', async () => {
    const { url, seen } = await start({ limit: '64kb' });
    const res = await request(`${url}/stream`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.alloc(4 * MB, 1),
    });
    expect(res.status).toBe(413);
    expect(res.headers.connection).toBe('close');
    expect(res.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 65536, contentLength: 4 * MB });
    expect(seen).toEqual({ bytes: 0, ended: false });
  });

  it('cuts a chunked body off as it crosses the limit, never handing the reader more', async () => {
    const { url, seen } = await start();
    const open = openRequest(`${url}/stream`, { headers: { 'transfer-encoding': 'chunked' } });
    const sent = streamBody(open, 50 * MB);
    const res = await open.response;
    expect(res.status).toBe(413);
    expect(res.headers['content-type']).toBe(PROBLEM_TYPE);
    expect(res.headers.connection).toBe('close');
    const body = res.json<{ received: number }>();
    expect(body).toEqual({
      type: 'urn:perfstack:problem:payload-too-large',
      title: 'Payload Too Large',
      status: 413,
      detail: 'The request body is larger than the limit of 1048576 bytes.',
      code: 'PAYLOAD_TOO_LARGE',
      limit: MB,
      received: expect.any(Number),
    });
    // The count stops at the chunk that crossed the limit; that chunk is dropped.
    expect(body.received).toBeGreaterThan(MB);
    expect(body.received).toBeLessThanOrEqual(MB + 256 * 1024);
    expect(seen.bytes).toBeLessThanOrEqual(MB);
    expect(seen.ended).toBe(false);
    expect(await sent).toBeLessThan(50 * MB);
  });

  it('lets a body at the limit through unchanged', async () => {
    const { url } = await start({ limit: '64kb' });
    const res = await request(`${url}/stream`, { method: 'POST', body: Buffer.alloc(65536, 7) });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ bytes: 65536 });
    expect(res.headers.connection).toBe('close'); // the client asked for it (no agent), not the limiter
  });

  it('keeps the connection alive for bodies under the limit', async () => {
    const { url } = await start({ limit: '64kb' });
    const agent = new http.Agent({ keepAlive: true });
    try {
      const res = await request(`${url}/stream`, { method: 'POST', body: 'hello', agent });
      expect(res.status).toBe(200);
      expect(res.headers.connection).toBe('keep-alive');
    } finally {
      agent.destroy();
    }
  });
});

describe('414 URI_TOO_LONG', () => {
  it('answers a long URL with the limit and the length', async () => {
    const { url, limiter } = await start({ maxUrlLength: 100 });
    const path = `/?q=${'a'.repeat(200)}`;
    const agent = new http.Agent({ keepAlive: true });
    try {
      const res = await request(`${url}${path}`, { agent });
      expect(res.status).toBe(414);
      expect(res.headers['content-type']).toBe(PROBLEM_TYPE);
      // No body to leave unread: the connection stays usable.
      expect(res.headers.connection).toBe('keep-alive');
      expect(res.json()).toEqual({
        type: 'urn:perfstack:problem:uri-too-long',
        title: 'URI Too Long',
        status: 414,
        detail: `The request target is ${path.length} characters long; the limit is 100.`,
        code: 'URI_TOO_LONG',
        limit: 100,
        received: path.length,
      });
      const ok = await request(`${url}/?q=short`, { agent });
      expect(ok.status).toBe(200);
    } finally {
      agent.destroy();
    }
    expect(limiter.stats().rejected).toEqual({
      PAYLOAD_TOO_LARGE: 0,
      URI_TOO_LONG: 1,
      HEADERS_TOO_LARGE: 0,
      BODY_TIMEOUT: 0,
      LENGTH_REQUIRED: 0,
      BAD_REQUEST: 0,
    });
  });

  it('closes the connection when the refused request has a body', async () => {
    const { url } = await start({ maxUrlLength: 20 });
    const res = await request(`${url}/stream?${'b'.repeat(40)}`, { method: 'POST', body: 'x'.repeat(1000) });
    expect(res.status).toBe(414);
    expect(res.headers.connection).toBe('close');
  });
});

describe('431 HEADERS_TOO_LARGE', () => {
  it('answers too many header fields', async () => {
    const { url } = await start({ maxHeaderCount: 20 });
    const headers: Record<string, string> = {};
    for (let i = 0; i < 25; i++) headers[`x-h${i}`] = 'v';
    const res = await request(url, { headers });
    expect(res.status).toBe(431);
    expect(res.headers['content-type']).toBe(PROBLEM_TYPE);
    // 25 of ours plus Host and Connection, which the client adds.
    expect(res.json()).toEqual({
      type: 'urn:perfstack:problem:headers-too-large',
      title: 'Request Header Fields Too Large',
      status: 431,
      detail: 'The request has 27 header fields; the limit is 20.',
      code: 'HEADERS_TOO_LARGE',
      limit: 20,
      received: 27,
      measure: 'count',
    });
  });

  it('answers too many header bytes when the server lets them through', async () => {
    // Node refuses a head over its maxHeaderSize (16 KiB by default) itself; raise it so ours applies.
    const { url } = await start({ maxHeaderBytes: '8kb' }, { maxHeaderSize: 64 * 1024 });
    const big = 'c'.repeat(10_000);
    const res = await request(url, { headers: { 'x-big': big } });
    expect(res.status).toBe(431);
    const host = `127.0.0.1:${new URL(url).port}`;
    // `Host: ...\r\n`, `Connection: close\r\n`, `x-big: ...\r\n`
    const bytes =
      'Host'.length + host.length + 4 + 'Connection'.length + 'close'.length + 4 + 'x-big'.length + 4 + 10_000;
    expect(res.json()).toEqual({
      type: 'urn:perfstack:problem:headers-too-large',
      title: 'Request Header Fields Too Large',
      status: 431,
      detail: `The request header fields take ${bytes} bytes; the limit is 8192.`,
      code: 'HEADERS_TOO_LARGE',
      limit: 8192,
      received: bytes,
      measure: 'bytes',
    });
  });

  it("leaves heads over Node's own maxHeaderSize to Node, which answers before any middleware", async () => {
    const { url, limiter } = await start({ maxHeaderBytes: '8kb' });
    const res = await request(url, { headers: { 'x-big': 'c'.repeat(20_000) } });
    expect(res.status).toBe(431);
    expect(res.headers['content-type']).toBeUndefined();
    expect(res.text).toBe('');
    expect(limiter.stats().rejected.HEADERS_TOO_LARGE).toBe(0);
  });
});

describe('408 BODY_TIMEOUT', () => {
  it('answers a body that trickles in slower than bodyTimeout (slowloris)', async () => {
    const { url, seen, limiter } = await start({ bodyTimeout: 300 });
    const open = openRequest(`${url}/stream`, { headers: { 'transfer-encoding': 'chunked' } });
    let writes = 0;
    const trickle = setInterval(() => {
      if (!open.answered() && !open.req.destroyed) {
        open.req.write('x');
        writes++;
      }
    }, 30);
    try {
      const res = await open.response;
      expect(res.status).toBe(408);
      expect(res.headers['content-type']).toBe(PROBLEM_TYPE);
      expect(res.headers.connection).toBe('close');
      const body = res.json<{ received: number }>();
      expect(body).toEqual({
        type: 'urn:perfstack:problem:body-timeout',
        title: 'Request Timeout',
        status: 408,
        detail: 'The request body did not arrive within 300 ms.',
        code: 'BODY_TIMEOUT',
        timeout: 300,
        received: expect.any(Number),
      });
      expect(body.received).toBeGreaterThan(0);
      expect(body.received).toBeLessThanOrEqual(writes);
      expect(seen.ended).toBe(false);
      expect(limiter.stats().rejected.BODY_TIMEOUT).toBe(1);
    } finally {
      clearInterval(trickle);
    }
  });

  it('lets a body that arrives in time through', async () => {
    const { url } = await start({ bodyTimeout: 2000 });
    const res = await request(`${url}/stream`, { method: 'POST', body: 'x'.repeat(5000) });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ bytes: 5000 });
  });

  it('starts no timer after close()', async () => {
    const { url, limiter } = await start({ bodyTimeout: 100 });
    await limiter.close();
    const open = openRequest(`${url}/stream`, { headers: { 'transfer-encoding': 'chunked' } });
    open.req.write('a');
    await sleep(300);
    expect(open.answered()).toBe(false);
    open.req.end('b');
    const res = await open.response;
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ bytes: 2 });
  });
});

describe('411 LENGTH_REQUIRED', () => {
  it('answers a chunked body when Content-Length is required', async () => {
    const { url, seen } = await start({ requireContentLength: true });
    const open = openRequest(`${url}/stream`, { headers: { 'transfer-encoding': 'chunked' } });
    open.req.write('hello');
    const res = await open.response;
    expect(res.status).toBe(411);
    expect(res.headers['content-type']).toBe(PROBLEM_TYPE);
    expect(res.headers.connection).toBe('close');
    expect(res.json()).toEqual({
      type: 'urn:perfstack:problem:length-required',
      title: 'Length Required',
      status: 411,
      detail: 'A request body must be sent with a Content-Length header.',
      code: 'LENGTH_REQUIRED',
    });
    expect(seen.bytes).toBe(0);
  });

  it('accepts a body with Content-Length and a request without a body', async () => {
    const { url } = await start({ requireContentLength: true });
    expect((await request(`${url}/stream`, { method: 'POST', body: 'abc' })).json()).toEqual({ bytes: 3 });
    expect((await request(url)).status).toBe(200);
  });
});

describe('answers and counts', () => {
  it('counts refusals by code in stats() and the shared registry', async () => {
    const registry = createRegistry();
    const { url, limiter } = await start({ registry, maxUrlLength: 50, limit: 10 });
    await request(`${url}/${'a'.repeat(60)}`);
    await request(`${url}/stream`, { method: 'POST', body: 'x'.repeat(11) });
    await request(`${url}/stream`, { method: 'POST', body: 'x'.repeat(12) });
    expect(limiter.stats().rejected).toMatchObject({ PAYLOAD_TOO_LARGE: 2, URI_TOO_LONG: 1 });
    const text = await registry.metrics();
    expect(text).toContain('perfstack_size_limit_rejected_total{code="PAYLOAD_TOO_LARGE"} 2');
    expect(text).toContain('perfstack_size_limit_rejected_total{code="URI_TOO_LONG"} 1');
  });

  it('sends headers only to HEAD', async () => {
    const { url } = await start({ maxUrlLength: 10 });
    const res = await request(`${url}/${'a'.repeat(20)}`, { method: 'HEAD' });
    expect(res.status).toBe(414);
    expect(res.headers['content-type']).toBe(PROBLEM_TYPE);
    expect(res.text).toBe('');
  });

  it('lets onReject answer instead', async () => {
    const { url } = await start({
      limit: 4,
      onReject(error, _req, res) {
        res.statusCode = error.status;
        res.end(`custom ${error.code} ${String(error.extensions.limit)}`);
      },
    });
    const res = await request(`${url}/stream`, { method: 'POST', body: 'too long' });
    expect(res.status).toBe(413);
    expect(res.text).toBe('custom PAYLOAD_TOO_LARGE 4');
    expect(res.headers.connection).toBe('close');
  });

  it('hands onReject an error without stack frames, and leaves Error.stackTraceLimit as it was', async () => {
    let seen: Error | undefined;
    const { url } = await start({
      limit: 4,
      onReject(error, _req, res) {
        seen = error;
        res.statusCode = error.status;
        res.end();
      },
    });
    const before = Error.stackTraceLimit;
    const res = await request(`${url}/stream`, { method: 'POST', body: 'too long' });
    expect(res.status).toBe(413);
    expect(seen?.stack).toBe('HttpProblemError: The request body of 8 bytes is larger than the limit of 4 bytes.');
    expect(Error.stackTraceLimit).toBe(before);
    expect(new Error('x').stack).toMatch(/\n\s+at /);
  });

  it('skips requests the skip predicate picks', async () => {
    const { url } = await start({ limit: 4, skip: (req) => req.headers['x-internal'] === '1' });
    const res = await request(`${url}/stream`, { method: 'POST', body: 'long enough', headers: { 'x-internal': '1' } });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ bytes: 11 });
  });
});
