/**
 * RFC 9111 §4.3 validation: a stale entry with a validator is revalidated by asking the
 * app with If-None-Match / If-Modified-Since; a 304 freshens the entry and its headers
 * are merged into the stored ones (§3.2, §4.3.4); a 200 replaces the entry. `no-cache`
 * responses are stored and revalidated before every reuse (§5.2.2.4); must-revalidate /
 * proxy-revalidate forbid serving stale, stale-if-error included (§4.2.4, §5.2.2.2).
 */
import { describe } from 'vitest';
import { type Case, conformance, type Origin } from './harness.js';

/** An origin with a strong ETag that answers the conditional itself and reports what it saw. */
function etagOrigin(
  cacheControl: string,
  opts: { version?: (call: number) => string; extra?: (call: number) => Record<string, string> } = {},
): Origin {
  return (req, res, call) => {
    const version = opts.version?.(call) ?? 'v1';
    res.setHeader('Cache-Control', cacheControl);
    res.setHeader('ETag', `"${version}"`);
    res.setHeader('X-Seen-INM', String(req.headers['if-none-match'] ?? '-'));
    res.setHeader('X-Call', String(call));
    for (const [name, value] of Object.entries(opts.extra?.(call) ?? {})) res.setHeader(name, value);
    if (req.headers['if-none-match'] === `"${version}"`) {
      res.status(304).end();
      return;
    }
    res.send(`body ${version}`);
  };
}

const cases: Case[] = [
  {
    name: '§4.3.1 a stale entry is revalidated with If-None-Match; the 304 freshens it; the client gets the stored body',
    origin: etagOrigin('max-age=10'),
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'body v1', headers: { 'x-seen-inm': '-' }, calls: 1 } },
      { advance: 5000, expect: { status: 200, cache: 'HIT', age: '5', calls: 1 } },
      {
        advance: 6000,
        expect: {
          status: 200,
          cache: 'MISS',
          age: undefined,
          body: 'body v1',
          headers: { 'x-seen-inm': '"v1"', 'x-call': '2', etag: '"v1"', 'content-length': '7' },
          calls: 2,
        },
      },
      // freshened for another 10 s from the 304
      { advance: 9000, expect: { status: 200, cache: 'HIT', age: '9', body: 'body v1', calls: 2 } },
    ],
  },
  {
    name: '§4.3.4 the 304’s headers are merged into the stored response (new Cache-Control, new header kept)',
    origin: etagOrigin('max-age=10', {
      extra: (call): Record<string, string> =>
        call === 1 ? { 'X-Version': 'one' } : { 'X-Version': 'two', 'Cache-Control': 'max-age=100' },
    }),
    steps: [
      { expect: { status: 200, cache: 'MISS', headers: { 'x-version': 'one' }, calls: 1 } },
      {
        advance: 11_000,
        expect: {
          status: 200,
          cache: 'MISS',
          body: 'body v1',
          headers: { 'x-version': 'two', 'cache-control': 'max-age=100' },
          calls: 2,
        },
      },
      {
        advance: 90_000,
        expect: {
          status: 200,
          cache: 'HIT',
          age: '90',
          body: 'body v1',
          headers: { 'x-version': 'two', 'cache-control': 'max-age=100', 'x-call': '2' },
          calls: 2,
        },
      },
    ],
  },
  {
    name: '§4.3.3 a 200 to the revalidation replaces the entry',
    origin: etagOrigin('max-age=10', { version: (call) => (call === 1 ? 'v1' : 'v2') }),
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'body v1', calls: 1 } },
      {
        advance: 11_000,
        expect: {
          status: 200,
          cache: 'MISS',
          body: 'body v2',
          headers: { etag: '"v2"', 'x-seen-inm': '"v1"' },
          calls: 2,
        },
      },
      {
        advance: 1000,
        expect: { status: 200, cache: 'HIT', age: '1', body: 'body v2', headers: { etag: '"v2"' }, calls: 2 },
      },
    ],
  },
  {
    name: '§4.3.2 the client’s own If-None-Match is answered from the revalidated entry (304)',
    origin: etagOrigin('max-age=10'),
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      {
        advance: 11_000,
        headers: { 'if-none-match': '"v1"' },
        expect: { status: 304, cache: 'MISS', body: '', headers: { etag: '"v1"' }, calls: 2 },
      },
      { headers: { 'if-none-match': '"other"' }, expect: { status: 200, cache: 'HIT', body: 'body v1', calls: 2 } },
    ],
  },
  {
    name: '§5.2.2.4 no-cache: stored, and revalidated before every reuse',
    origin: etagOrigin('no-cache'),
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'body v1', headers: { 'x-seen-inm': '-' }, calls: 1 } },
      { expect: { status: 200, cache: 'MISS', body: 'body v1', headers: { 'x-seen-inm': '"v1"' }, calls: 2 } },
      { expect: { status: 200, cache: 'MISS', body: 'body v1', headers: { 'x-seen-inm': '"v1"' }, calls: 3 } },
    ],
  },
  {
    name: '§4.3.1 If-Modified-Since is used when there is only Last-Modified',
    origin: (req, res, call) => {
      res.setHeader('Cache-Control', 'max-age=10');
      res.setHeader('Last-Modified', 'Wed, 31 Dec 2025 12:00:00 GMT');
      res.setHeader('X-Seen-IMS', String(req.headers['if-modified-since'] ?? '-'));
      res.setHeader('X-Call', String(call));
      if (req.headers['if-modified-since'] !== undefined) {
        res.status(304).end();
        return;
      }
      res.setHeader('Content-Type', 'text/plain');
      res.end('dated');
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'dated', calls: 1 } },
      {
        advance: 11_000,
        expect: {
          status: 200,
          cache: 'MISS',
          body: 'dated',
          headers: { 'x-seen-ims': 'Wed, 31 Dec 2025 12:00:00 GMT' },
          calls: 2,
        },
      },
      { advance: 1000, expect: { status: 200, cache: 'HIT', body: 'dated', calls: 2 } },
    ],
  },
  {
    name: '§4.3.1 works when the app calls writeHead(304) itself (node:http style)',
    origin: (req, res, call) => {
      if (req.headers['if-none-match'] === '"n1"') {
        res.writeHead(304, { ETag: '"n1"', 'Cache-Control': 'max-age=10', 'X-Call': String(call) });
        res.end();
        return;
      }
      res.writeHead(200, {
        ETag: '"n1"',
        'Cache-Control': 'max-age=10',
        'Content-Type': 'text/plain',
        'X-Call': String(call),
      });
      res.end('raw');
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'raw', calls: 1 } },
      {
        advance: 11_000,
        expect: {
          status: 200,
          cache: 'MISS',
          body: 'raw',
          headers: { 'content-length': '3', 'x-call': '2' },
          calls: 2,
        },
      },
      { advance: 1000, expect: { status: 200, cache: 'HIT', body: 'raw', calls: 2 } },
    ],
  },
  {
    name: '§4.2.4 must-revalidate forbids stale-while-revalidate',
    origin: etagOrigin('max-age=10, must-revalidate, stale-while-revalidate=60'),
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      { advance: 11_000, expect: { status: 200, cache: 'MISS', body: 'body v1', calls: 2 } },
    ],
  },
  {
    name: '§5.2.2.8 proxy-revalidate forbids stale-if-error: the 500 goes out',
    origin: (_req, res, call) => {
      res.setHeader('Cache-Control', 'max-age=10, proxy-revalidate, stale-if-error=60');
      if (call > 1) {
        res.status(500).send('down');
        return;
      }
      res.send('up');
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'up', calls: 1 } },
      { advance: 11_000, expect: { status: 500, cache: 'MISS', body: 'down', calls: 2 } },
    ],
  },
  {
    name: 'RFC 5861 stale-if-error without must-revalidate: the stale entry answers the 500',
    origin: (_req, res, call) => {
      res.setHeader('Cache-Control', 'max-age=10, stale-if-error=60');
      if (call > 1) {
        res.status(500).send('down');
        return;
      }
      res.send('up');
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'up', calls: 1 } },
      { advance: 11_000, expect: { status: 200, cache: 'STALE', age: '11', body: 'up', calls: 2 } },
    ],
  },
];

describe('RFC 9111 §4.3 validation', () => {
  conformance(cases);
});
