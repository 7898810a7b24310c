/**
 * RFC 9110 §14 range requests answered from a stored complete 200: one range → 206 with
 * Content-Range; several → multipart/byteranges (§14.6); unsatisfiable → 416 with
 * `Content-Range: bytes *\/length` (§15.5.17); If-Range (§13.1.5) with a strong ETag or
 * the exact Last-Modified applies the range, anything else gets the whole 200.
 */
import { describe, expect, it } from 'vitest';
import { answer, type Case, conformance, httpDate, T0 } from './harness.js';

const BODY = 'abcdefghijklmnopqrstuvwxyz';
const origin = answer(
  {
    'Cache-Control': 'max-age=60',
    ETag: '"r1"',
    'Last-Modified': httpDate(T0 - 3600_000),
    'Content-Type': 'text/plain',
  },
  BODY,
);
const ranged = (
  name: string,
  headers: Record<string, string>,
  status: number,
  body: string,
  extra: Record<string, string | undefined> = {},
): Case => ({
  name,
  origin,
  steps: [
    { expect: { status: 200, cache: 'MISS', body: BODY } },
    { headers, expect: { status, cache: 'HIT', body, headers: extra, calls: 1 } },
  ],
});

const cases: Case[] = [
  ranged('§14.1.2 bytes=0-4 → 206', { range: 'bytes=0-4' }, 206, 'abcde', {
    'content-range': 'bytes 0-4/26',
    'content-length': '5',
  }),
  ranged('§14.1.2 bytes=-3 (suffix) → 206', { range: 'bytes=-3' }, 206, 'xyz', { 'content-range': 'bytes 23-25/26' }),
  ranged('§14.1.2 bytes=20- (open) → 206', { range: 'bytes=20-' }, 206, 'uvwxyz', {
    'content-range': 'bytes 20-25/26',
  }),
  ranged('§14.1.2 an end past the length is clipped → 206', { range: 'bytes=24-100' }, 206, 'yz', {
    'content-range': 'bytes 24-25/26',
  }),
  ranged('§15.5.17 bytes=30-40 unsatisfiable → 416', { range: 'bytes=30-40' }, 416, '', {
    'content-range': 'bytes */26',
    'content-length': '0',
  }),
  ranged('§14.2 a malformed Range is ignored → 200', { range: 'bytes=abc' }, 200, BODY, { 'content-range': undefined }),
  ranged('§14.2 a unit other than bytes is ignored → 200', { range: 'items=0-1' }, 200, BODY),
  ranged('§14.1.1 last < first makes the Range invalid: ignored → 200', { range: 'bytes=5-1' }, 200, BODY),
  ranged('§14.1.2 two ranges that overlap are combined → one 206 part', { range: 'bytes=0-3,2-5' }, 206, 'abcdef', {
    'content-range': 'bytes 0-5/26',
  }),
  ranged('§13.1.5 If-Range with the strong ETag → 206', { range: 'bytes=0-1', 'if-range': '"r1"' }, 206, 'ab'),
  ranged('§13.1.5 If-Range with another ETag → 200', { range: 'bytes=0-1', 'if-range': '"old"' }, 200, BODY),
  ranged(
    '§13.1.5 If-Range with a weak ETag never matches → 200',
    { range: 'bytes=0-1', 'if-range': 'W/"r1"' },
    200,
    BODY,
  ),
  ranged(
    '§13.1.5 If-Range with the exact Last-Modified → 206',
    { range: 'bytes=2-3', 'if-range': httpDate(T0 - 3600_000) },
    206,
    'cd',
  ),
  ranged(
    '§13.1.5 If-Range with another date → 200',
    { range: 'bytes=2-3', 'if-range': httpDate(T0 - 7200_000) },
    200,
    BODY,
  ),
];

cases.push({
  name: '§14 + RFC 9111 §4.3 a Range on a stale entry: revalidated (304), then answered 206 from it',
  origin: (req, res, call) => {
    res.set({ 'Cache-Control': 'max-age=10', ETag: '"r1"', 'Content-Type': 'text/plain', 'X-Call': String(call) });
    if (req.headers['if-none-match'] === '"r1"') {
      res.status(304).end();
      return;
    }
    res.send(BODY);
  },
  steps: [
    { expect: { status: 200, cache: 'MISS', body: BODY, calls: 1 } },
    {
      advance: 11_000,
      headers: { range: 'bytes=0-2' },
      expect: { status: 206, cache: 'MISS', body: 'abc', headers: { 'content-range': 'bytes 0-2/26' }, calls: 2 },
    },
    {
      advance: 11_000,
      headers: { range: 'bytes=99-' },
      expect: { status: 416, cache: 'MISS', body: '', headers: { 'content-range': 'bytes */26' }, calls: 3 },
    },
  ],
});

describe('RFC 9110 §14 ranges', () => {
  conformance(cases);

  it('§14.6 several ranges → 206 multipart/byteranges with a part per range', async () => {
    let seen: { type?: string; body?: string } = {};
    const { request, listen } = await import('../../../../test/helpers/http.js');
    const { responseCache } = await import('@perfstack/cache');
    const express = (await import('express')).default;
    const c = responseCache();
    const app = express();
    app.use(c);
    app.get('/r', (req, res) => origin(req, res, 1, Date.now()));
    const server = await listen(app);
    try {
      await request(`${server.url}/r`);
      const res = await request(`${server.url}/r`, { headers: { range: 'bytes=0-1, 24-25' } });
      seen = { type: String(res.headers['content-type']), body: res.text };
      expect(res.status).toBe(206);
      expect(res.headers['x-cache']).toBe('HIT');
      const boundary = /^multipart\/byteranges; boundary=([0-9a-f]+)$/.exec(seen.type ?? '')?.[1];
      expect(boundary).toBeDefined();
      expect(seen.body).toBe(
        `--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 0-1/26\r\n\r\nab\r\n` +
          `--${boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Range: bytes 24-25/26\r\n\r\nyz\r\n` +
          `--${boundary}--\r\n`,
      );
      expect(res.headers['content-length']).toBe(String(Buffer.byteLength(seen.body ?? '')));
    } finally {
      await server.close();
      await c.close();
    }
  });
});
