/**
 * Bad input through the full stack, on Express 5 and on node:http (`perfstack/node`),
 * over raw sockets so the bytes are exactly the bad ones. Every case gets a 4xx (the
 * stack's own answers are problem+json; Node's parser answers some with a bare 400/431
 * before any middleware runs) or a correct answer — never a 5xx, a hang or a crash —
 * and the server keeps serving afterwards.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express from 'express';
import { cache, type PerformanceStack, performanceStack } from 'perfstack';
import { createListener, setRoute } from 'perfstack/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, type TestServer } from '../helpers/http.js';
import { problemOf, raw } from './raw.js';

const PAD = 'abcdefghijklmnopqrstuvwxyz'.repeat(100);
const H = 'Host: x\r\nConnection: close\r\n';
const serveTimeProblems: string[] = [];
const log = { warn: (m: string) => serveTimeProblems.push(m), error: (m: string) => serveTimeProblems.push(m) };
const stackOptions = {
  env: false,
  log,
  logger: { destination: { write() {} } as never },
  sizeLimit: { limit: '1mb', bodyTimeout: '1s', lingerTimeout: '200ms' },
} as const;

function depthOf(value: unknown): number {
  let depth = 0;
  let v = value;
  while (Array.isArray(v)) {
    depth++;
    v = v[0];
  }
  return depth;
}

let expressStack: PerformanceStack;
let nodeStack: PerformanceStack;
let ex: TestServer;
let nd: TestServer;

beforeAll(async () => {
  expressStack = performanceStack(stackOptions);
  const app = express();
  app.use(expressStack);
  app.get('/c/:n', cache({ ttl: '1m' }), (req, res) => {
    res.json({ n: req.params.n, pad: PAD });
  });
  app.get('/plain', (req, res) => {
    res.json({ q: Object.keys(req.query as object).length });
  });
  app.post('/json', express.json({ limit: '1mb' }), (req, res) => {
    res.json({ depth: depthOf(req.body), type: typeof req.body });
  });
  // the app's own errors (bad JSON, undecodable params) as the app would answer them
  app.use((error: { status?: number }, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    res.status(error.status && error.status < 500 ? error.status : 500).json({ error: 'app error' });
  });
  ex = await listen(app);

  nodeStack = performanceStack(stackOptions);
  const route = cache({ ttl: '1m' });
  nd = await listen(
    createListener(nodeStack, (req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? '/').split('?')[0] as string;
      if (path.startsWith('/c/')) {
        setRoute(req, '/c/:n');
        route(req as never, res as never, () => {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ n: path.slice(3), pad: PAD }));
        });
        return;
      }
      if (path === '/json' && req.method === 'POST') {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          let body: unknown;
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            res.statusCode = 400;
            res.end('bad json');
            return;
          }
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ depth: depthOf(body), type: typeof body }));
        });
        req.on('error', () => {});
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ q: (req.url ?? '').split('&').length }));
    }),
  );
});

afterAll(async () => {
  await ex?.close();
  await nd?.close();
  await expressStack?.close();
  await nodeStack?.close();
});

const nested = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
const etags = Array.from({ length: 700 }, (_, i) => `"e${i}"`).join(', ');

interface Case {
  readonly name: string;
  readonly data: string | Buffer;
  /** Expected status on Express, and on node:http when it differs (`undefined`: same). */
  readonly status: number;
  readonly nodeStatus?: number;
  /** The answer is the stack's problem+json with this code. */
  readonly code?: string;
  /** The answer comes from Node's parser: a bare response, no stack header. */
  readonly parser?: boolean;
  readonly check?: (res: Awaited<ReturnType<typeof raw>>, server: 'express' | 'node') => void;
}

const CASES: readonly Case[] = [
  {
    name: 'header line without a colon',
    data: `GET /plain HTTP/1.1\r\n${H}BadHeader\r\n\r\n`,
    status: 400,
    parser: true,
  },
  {
    name: 'space in a header name',
    data: `GET /plain HTTP/1.1\r\n${H}Bad Header: x\r\n\r\n`,
    status: 400,
    parser: true,
  },
  {
    name: 'obsolete line folding',
    data: `GET /plain HTTP/1.1\r\n${H}X-A: a\r\n  folded\r\n\r\n`,
    status: 400,
    parser: true,
  },
  {
    name: 'one 20 kB header (over Node’s 16 kB)',
    data: `GET /plain HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    status: 431,
    parser: true,
  },
  {
    name: '150 header fields (over the stack’s 100)',
    data: `GET /plain HTTP/1.1\r\n${H}${Array.from({ length: 150 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`,
    status: 431,
    code: 'HEADERS_TOO_LARGE',
  },
  { name: 'a 100-character method', data: `${'A'.repeat(100)} /plain HTTP/1.1\r\n${H}\r\n`, status: 400, parser: true },
  { name: 'origin-form without a slash', data: `GET c/1 HTTP/1.1\r\n${H}\r\n`, status: 400, parser: true },
  { name: 'HTTP/1.1 without Host', data: 'GET /c/1 HTTP/1.1\r\nConnection: close\r\n\r\n', status: 400, parser: true },
  {
    name: 'raw 0xFF bytes in the target',
    data: Buffer.concat([Buffer.from('GET /c/'), Buffer.from([0xff, 0xfe]), Buffer.from(` HTTP/1.1\r\n${H}\r\n`)]),
    status: 400,
    parser: true,
  },
  {
    name: 'CR inside X-Request-Id',
    data: `GET /plain HTTP/1.1\r\n${H}X-Request-Id: abc\rdef\r\n\r\n`,
    status: 400,
    parser: true,
  },
  {
    name: 'bare LF inside X-Request-Id',
    data: `GET /plain HTTP/1.1\r\n${H}X-Request-Id: abc\ndef\r\n\r\n`,
    status: 400,
    parser: true,
  },
  {
    name: 'two different Content-Length',
    data: `POST /json HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n[1]`,
    status: 400,
    parser: true,
  },
  {
    name: 'two equal Content-Length',
    data: `POST /json HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n[1]`,
    status: 400,
    parser: true,
  },
  {
    name: 'Transfer-Encoding: chunked with Content-Length (smuggling)',
    data: `POST /json HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\n[1]\r\n0\r\n\r\n`,
    status: 400,
    parser: true,
  },
  {
    name: 'negative Content-Length',
    data: `POST /json HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n{}`,
    status: 400,
    parser: true,
  },
  {
    name: 'Content-Length: 1e20',
    data: `POST /json HTTP/1.1\r\n${H}Content-Length: 99999999999999999999\r\n\r\n{}`,
    status: 400,
    parser: true,
  },
  {
    name: 'a bad chunk size',
    data: `POST /json HTTP/1.1\r\n${H}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n`,
    status: 400,
    parser: true,
  },
  {
    name: 'Content-Length 5 MB over the 1 MB limit',
    data: `POST /json HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n{}`,
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  {
    name: 'a body that stops short of its Content-Length (slow client)',
    data: `POST /json HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{}`,
    status: 408,
    code: 'BODY_TIMEOUT',
  },
  {
    name: 'a 10 kB query string (over the 8192 limit)',
    data: `GET /plain?${'a=1&'.repeat(2500)} HTTP/1.1\r\n${H}\r\n`,
    status: 414,
    code: 'URI_TOO_LONG',
  },
  {
    name: 'a 6 kB query string with 1500 parameters',
    data: `GET /plain?${'a=1&'.repeat(1500)} HTTP/1.1\r\n${H}\r\n`,
    status: 200,
  },
  {
    name: '`/%zz` (invalid percent-encoding, no route)',
    data: `GET /%zz HTTP/1.1\r\n${H}\r\n`,
    status: 404,
    nodeStatus: 200,
  },
  { name: '`/%` (truncated percent-encoding)', data: `GET /% HTTP/1.1\r\n${H}\r\n`, status: 404, nodeStatus: 200 },
  {
    name: '`/c/%zz` into a route parameter',
    data: `GET /c/%zz HTTP/1.1\r\n${H}\r\n`,
    status: 400,
    nodeStatus: 200,
    check: (res, server) => {
      if (server === 'express') expect(res.headers['x-cache']).toBe('MISS'); // looked up, not stored
    },
  },
  {
    name: 'invalid UTF-8 percent-encoded (`%C3%28`) in a parameter',
    data: `GET /c/%C3%28 HTTP/1.1\r\n${H}\r\n`,
    status: 400,
    nodeStatus: 200,
  },
  {
    name: 'invalid UTF-8 bytes in a JSON body',
    data: Buffer.concat([
      Buffer.from(`POST /json HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 6\r\n\r\n["`),
      Buffer.from([0xff, 0xc3]),
      Buffer.from('"]'),
    ]),
    status: 200,
    check: (res) => expect(JSON.parse(res.body)).toEqual({ depth: 1, type: 'object' }),
  },
  {
    name: 'JSON nested 10 000 levels deep',
    data: `POST /json HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: ${nested.length}\r\n\r\n${nested}`,
    status: 200,
    check: (res) => expect(JSON.parse(res.body)).toEqual({ depth: 10_000, type: 'object' }),
  },
  {
    name: 'truncated JSON',
    data: `POST /json HTTP/1.1\r\n${H}Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{"a":`,
    status: 400,
  },
  {
    name: 'an X-Request-Id with markup is replaced, not echoed',
    data: `GET /plain HTTP/1.1\r\n${H}X-Request-Id: <script>alert(1)</script>\r\n\r\n`,
    status: 200,
    check: (res) => expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/),
  },
  {
    name: 'garbage Cache-Control on a cached entry',
    data: `GET /c/1 HTTP/1.1\r\n${H}Cache-Control: max-age=abc, no-cache="", ,,, =, max-stale=-1, s-maxage=99999999999999999999\r\n\r\n`,
    status: 200,
    check: (res) => {
      expect(res.headers['x-cache']).toBe('HIT');
      expect(JSON.parse(res.body)).toEqual({ n: '1', pad: PAD });
    },
  },
  {
    name: 'If-None-Match with 700 ETags, none matching',
    data: `GET /c/1 HTTP/1.1\r\n${H}If-None-Match: ${etags}\r\n\r\n`,
    status: 200,
    check: (res) => expect(res.headers['x-cache']).toBe('HIT'),
  },
  {
    name: 'If-None-Match: * on a cached entry',
    data: `GET /c/1 HTTP/1.1\r\n${H}If-None-Match: *\r\n\r\n`,
    // `*` matches any current representation (RFC 9110 §13.1.2), ETag or not: the
    // node:http route sets none, Express does, both answer 304.
    status: 304,
    check: (res) => {
      expect(res.headers['x-cache']).toBe('HIT');
      if (res.status === 304) expect(res.body).toBe('');
    },
  },
  {
    name: 'If-Modified-Since garbage on a cached entry',
    data: `GET /c/1 HTTP/1.1\r\n${H}If-Modified-Since: yesterday-ish\r\n\r\n`,
    status: 200,
    check: (res) => expect(res.headers['x-cache']).toBe('HIT'),
  },
  // Issue 14: ranges on a stored complete 200 are answered from it (RFC 9110 §14); a range
  // unit the cache does not know is ignored; nothing unsatisfiable becomes a wrong 206.
  ...(
    [
      ['bytes=0-4', 206],
      ['bytes=999999-1000000', 416],
      ['lines=a-b,,,', 200],
      ['bytes=-0', 416],
      ['bytes=5-1', 200],
    ] as const
  ).map(
    ([range, status]): Case => ({
      name: `Range: ${range} on a cached entry (${status})`,
      data: `GET /c/1 HTTP/1.1\r\n${H}Range: ${range}\r\n\r\n`,
      status,
      check: (res) => {
        expect(res.headers['x-cache']).toBe('HIT');
        const full = JSON.stringify({ n: '1', pad: PAD });
        if (status === 206) {
          expect(res.headers['content-range']).toBe(`bytes 0-4/${Buffer.byteLength(full)}`);
          expect(res.body).toBe(full.slice(0, 5));
        } else if (status === 416) {
          expect(res.headers['content-range']).toBe(`bytes */${Buffer.byteLength(full)}`);
          expect(res.body).toBe('');
        } else {
          expect(res.headers['content-range']).toBeUndefined();
          expect(JSON.parse(res.body)).toEqual({ n: '1', pad: PAD });
        }
      },
    }),
  ),
  {
    name: 'garbage X-Forwarded-For',
    data: `GET /plain HTTP/1.1\r\n${H}X-Forwarded-For: ::::, 999.1.1.1, <x>, \r\n\r\n`,
    status: 200,
  },
  {
    name: 'absolute-form target with a foreign authority',
    data: `GET http://evil.example/c/1 HTTP/1.1\r\n${H}\r\n`,
    status: 200,
    check: (res) => expect(res.headers['x-cache']).toBe('MISS'), // its own key: cannot poison /c/1
  },
];

describe.each([
  ['express', () => ex.port],
  ['node', () => nd.port],
] as const)('bad input through the full stack on %s', (server, port) => {
  beforeAll(async () => {
    // the entry the conditional and Range cases hit
    const first = await raw(port(), `GET /c/1 HTTP/1.1\r\n${H}\r\n`);
    expect(first.status).toBe(200);
  });

  it.each(CASES)('$name', async (c) => {
    const res = await raw(port(), c.data, 5000);
    expect(res.timedOut).toBe(false);
    const expected = server === 'node' && c.nodeStatus !== undefined ? c.nodeStatus : c.status;
    expect(res.status).toBe(expected);
    if (c.parser) {
      // Node's parser answered before any middleware: a bare response, and the connection closed
      expect(res.headers['x-request-id']).toBeUndefined();
      expect(res.headers.connection).toBe('close');
    } else {
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    }
    if (c.code) {
      expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(problemOf(res)).toMatchObject({ status: expected, code: c.code });
    }
    c.check?.(res, server);
    // and the server still serves
    const after = await raw(port(), `GET /c/1 HTTP/1.1\r\n${H}\r\n`);
    expect(after.status).toBe(200);
  });

  it('logged no serve-time problem but the one-time X-Forwarded-For advice (nothing in the stack threw)', () => {
    expect(serveTimeProblems.filter((m) => !m.startsWith('ERR_ERL_UNEXPECTED_X_FORWARDED_FOR:'))).toEqual([]);
  });
});

describe('a response Vary naming an Object.prototype member', () => {
  it('`Vary: constructor` on a cacheable route is stored or passed through, not a 500', async () => {
    // @perfstack/cache varyValue()/matchesVariant() read only own properties of req.headers
    // (`headers.constructor` is Object on Node's plain-object headers).
    const stack = performanceStack(stackOptions);
    const app = express();
    app.use(stack);
    app.get('/v', cache({ ttl: '1m' }), (_req, res) => {
      res.setHeader('vary', 'Constructor');
      res.json({ ok: true });
    });
    const server = await listen(app);
    try {
      const res = await raw(server.port, `GET /v HTTP/1.1\r\n${H}\r\n`);
      expect(res.status).toBe(200);
    } finally {
      await server.close();
      await stack.close();
    }
  });
});
