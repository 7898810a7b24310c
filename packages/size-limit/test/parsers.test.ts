/**
 * Invisible below the limit: express.json(), express.urlencoded(), express.raw(), multer
 * and handlers that read `req` as a stream keep working behind the limiter on Express 5
 * and Express 4, and a body over the limit gets the limiter's problem+json, not the
 * parser's error, whichever of them reads it. A per-route override raises the limit
 * for one route although the stack's limit runs first.
 */
import type { RequestListener, ServerResponse } from 'node:http';
import { type SizeLimiter, sizeLimit } from '@perfstack/size-limit';
import express from 'express';
import express4 from 'express4';
import multer from 'multer';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { openRequest, streamBody } from './client.js';

const KB = 1024;
const MB = 1024 * KB;
const BOUNDARY = 'perfstackBoundary';

type ExpressLike = typeof express;

/** A multipart body with one field and one file of `size` bytes. */
function multipart(size: number): Buffer {
  return Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n` +
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    ),
    Buffer.alloc(size, 0x62),
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
}

/** Bodies of about `size` bytes for each parser, with their content type and expected answer. */
const PARSERS = {
  json: {
    type: 'application/json',
    body: (size: number) => Buffer.from(JSON.stringify({ pad: 'p'.repeat(size) })),
    expected: (size: number) => ({ kind: 'json', pad: size }),
  },
  urlencoded: {
    type: 'application/x-www-form-urlencoded',
    body: (size: number) => Buffer.from(`a=1&pad=${'p'.repeat(size)}`),
    expected: (size: number) => ({ kind: 'urlencoded', a: '1', pad: size }),
  },
  raw: {
    type: 'application/octet-stream',
    body: (size: number) => Buffer.alloc(size, 3),
    expected: (size: number) => ({ kind: 'raw', bytes: size }),
  },
  multer: {
    type: `multipart/form-data; boundary=${BOUNDARY}`,
    body: multipart,
    expected: (size: number) => ({ kind: 'multer', field: 'value', file: size }),
  },
  stream: {
    type: 'text/plain',
    body: (size: number) => Buffer.alloc(size, 0x73),
    expected: (size: number) => ({ kind: 'stream', bytes: size }),
  },
} as const;

type ParserName = keyof typeof PARSERS;
const PARSER_NAMES = Object.keys(PARSERS) as ParserName[];

/** The route handlers for each parser, behind `prefix` and the given extra middleware. */
function mountRoutes(app: ReturnType<ExpressLike>, lib: ExpressLike, prefix: string, before: SizeLimiter[]) {
  // biome-ignore lint/suspicious/noExplicitAny: Express 4 and 5 handler types differ.
  const add = (path: string, ...handlers: any[]) => app.post(`${prefix}${path}`, ...before, ...handlers);
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: 100 * MB } });
  add('/json', lib.json({ limit: '100mb' }), (req: express.Request, res: express.Response) => {
    res.json({ kind: 'json', pad: req.body.pad.length });
  });
  add(
    '/urlencoded',
    lib.urlencoded({ limit: '100mb', extended: false }),
    (req: express.Request, res: express.Response) => {
      res.json({ kind: 'urlencoded', a: req.body.a, pad: req.body.pad.length });
    },
  );
  add('/raw', lib.raw({ type: '*/*', limit: '100mb' }), (req: express.Request, res: express.Response) => {
    res.json({ kind: 'raw', bytes: (req.body as Buffer).length });
  });
  add('/multer', upload.single('file'), (req: express.Request, res: express.Response) => {
    res.json({ kind: 'multer', field: req.body.field, file: req.file?.size });
  });
  add('/stream', async (req: express.Request, res: express.Response) => {
    let bytes = 0;
    for await (const chunk of req) bytes += (chunk as Buffer).length;
    res.json({ kind: 'stream', bytes });
  });
}

for (const [name, lib] of [
  ['Express 5', express],
  ['Express 4', express4 as unknown as ExpressLike],
] as const) {
  describe(`${name}: parsers behind sizeLimit({ limit: '64kb' })`, () => {
    let server: TestServer;
    let limiter: SizeLimiter;

    beforeAll(async () => {
      limiter = sizeLimit({ limit: '64kb' });
      const app = lib();
      app.use(limiter);
      mountRoutes(app, lib, '', []);
      // The per-route override sits in front of the route's own parser.
      mountRoutes(app, lib, '/big', [sizeLimit.route({ limit: '4mb' })]);
      server = await listen(app as unknown as RequestListener);
    });

    afterAll(async () => {
      await server.close();
      await limiter.close();
    });

    for (const parser of PARSER_NAMES) {
      const { type, body, expected } = PARSERS[parser];

      it(`${parser}: parses a body below the limit`, async () => {
        const res = await request(`${server.url}/${parser}`, {
          method: 'POST',
          headers: { 'content-type': type },
          body: body(40 * KB),
        });
        expect(res.status).toBe(200);
        expect(res.json()).toEqual(expected(40 * KB));
      });

      it(`${parser}: parses a chunked body below the limit`, async () => {
        const open = openRequest(`${server.url}/${parser}`, {
          headers: { 'content-type': type, 'transfer-encoding': 'chunked' },
        });
        const payload = body(40 * KB);
        for (let at = 0; at < payload.length; at += 4096) open.req.write(payload.subarray(at, at + 4096));
        open.req.end();
        const res = await open.response;
        expect(res.status).toBe(200);
        expect(res.json()).toEqual(expected(40 * KB));
      });

      it(`${parser}: gets the limiter's 413 for a Content-Length over the limit`, async () => {
        const payload = body(200 * KB);
        const res = await request(`${server.url}/${parser}`, {
          method: 'POST',
          headers: { 'content-type': type },
          body: payload,
        });
        expect(res.status).toBe(413);
        expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
        expect(res.headers.connection).toBe('close');
        expect(res.json()).toEqual({
          type: 'urn:perfstack:problem:payload-too-large',
          title: 'Payload Too Large',
          status: 413,
          detail: `The request body of ${payload.length} bytes is larger than the limit of 65536 bytes.`,
          code: 'PAYLOAD_TOO_LARGE',
          limit: 65536,
          contentLength: payload.length,
        });
      });

      it(`${parser}: gets the limiter's 413 for a chunked body over the limit`, async () => {
        const open = openRequest(`${server.url}/${parser}`, {
          headers: { 'content-type': type, 'transfer-encoding': 'chunked' },
        });
        const sent = streamBody(open, 20 * MB, 16 * KB);
        const res = await open.response;
        expect(res.status).toBe(413);
        expect(res.headers.connection).toBe('close');
        expect(res.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 65536 });
        expect(await sent).toBeLessThan(20 * MB);
      });

      it(`${parser}: takes a 1 MB body on the route that raised its limit to 4mb`, async () => {
        const res = await request(`${server.url}/big/${parser}`, {
          method: 'POST',
          headers: { 'content-type': type },
          body: body(MB),
        });
        expect(res.status).toBe(200);
        expect(res.json()).toEqual(expected(MB));
      });

      it(`${parser}: refuses a body over the route's own limit with the route's limit`, async () => {
        const open = openRequest(`${server.url}/big/${parser}`, {
          headers: { 'content-type': type, 'content-length': 5 * MB },
        });
        const res = await open.response;
        expect(res.status).toBe(413);
        expect(res.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 4 * MB, contentLength: 5 * MB });
      });
    }

    it("wins over a parser's own smaller limit for bodies over both (body-parser reads to discard)", async () => {
      // express.json() alone (100kb default) refuses a 200 KB body itself and then drains it;
      // the limiter sees the drain cross its 64 KB and answers first.
      const app = lib();
      const own = sizeLimit({ limit: '64kb' });
      app.use(own);
      app.post('/default-json', lib.json(), (_req: unknown, res: ServerResponse) => res.end('parsed'));
      const local = await listen(app as unknown as RequestListener);
      try {
        const open = openRequest(`${local.url}/default-json`, {
          headers: { 'content-type': 'application/json', 'content-length': 200 * KB },
        });
        void streamBody(open, 200 * KB, 8 * KB);
        const res = await open.response;
        expect(res.status).toBe(413);
        expect(res.json()).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', limit: 65536, contentLength: 200 * KB });
      } finally {
        await local.close();
        await own.close();
      }
    });
  });
}

describe('app-level parsers', () => {
  it('works when the route override is mounted before an app-level parser', async () => {
    const limiter = sizeLimit({ limit: '16kb' });
    const app = express();
    app.use(limiter);
    app.use('/upload', sizeLimit.route({ limit: '2mb' }));
    app.use(express.json({ limit: '50mb' }));
    app.post('/upload', (req, res) => {
      res.json({ pad: req.body.pad.length });
    });
    app.post('/small', (req, res) => {
      res.json({ pad: req.body.pad.length });
    });
    const server = await listen(app as unknown as RequestListener);
    try {
      const big = JSON.stringify({ pad: 'p'.repeat(MB) });
      const ok = await request(`${server.url}/upload`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: big,
      });
      expect(ok.status).toBe(200);
      expect(ok.json()).toEqual({ pad: MB });
      const refused = await request(`${server.url}/small`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: big,
      });
      expect(refused.status).toBe(413);
      expect(refused.json()).toMatchObject({ limit: 16 * KB, contentLength: big.length });
    } finally {
      await server.close();
      await limiter.close();
    }
  });
});
