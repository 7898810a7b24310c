/**
 * RFC 9111 §3 (storing responses in a shared cache), §3.5 (Authorization), and
 * DESIGN.md's Cookie / Set-Cookie rule on top. Each case: two GETs; the second is a HIT
 * exactly when the response was stored.
 */
import { describe } from 'vitest';
import { answer, type Case, conformance, httpDate, T0 } from './harness.js';

const twice = (first: string, second: string, extra: Partial<Case> = {}) => ({
  steps: [
    { expect: { status: 200, cache: first, calls: 1 } },
    { advance: 1000, expect: { status: 200, cache: second, calls: second === 'HIT' ? 1 : 2 } },
  ],
  ...extra,
});

const cases: Case[] = [
  {
    name: '§3 max-age without public is stored',
    origin: answer({ 'Cache-Control': 'max-age=60' }),
    ...twice('MISS', 'HIT'),
  },
  { name: '§3 s-maxage is stored', origin: answer({ 'Cache-Control': 's-maxage=60' }), ...twice('MISS', 'HIT') },
  {
    name: '§3 Expires in the future is stored',
    origin: answer({ Expires: httpDate(T0 + 60_000) }),
    ...twice('MISS', 'HIT'),
  },
  {
    name: '§3 Last-Modified on a 200 is stored (heuristic freshness §4.2.2)',
    origin: answer({ 'Last-Modified': httpDate(T0 - 10 * 3600_000) }),
    ...twice('MISS', 'HIT'),
  },
  { name: '§3 nothing said: not stored', origin: answer({}), ...twice('MISS', 'MISS') },
  {
    name: '§3 no-store is never stored',
    origin: answer({ 'Cache-Control': 'no-store, max-age=60' }),
    ...twice('MISS', 'MISS'),
  },
  {
    name: '§3 private is never stored',
    origin: answer({ 'Cache-Control': 'private, max-age=60' }),
    ...twice('MISS', 'MISS'),
  },
  {
    name: '§3 Vary: * is never stored',
    origin: answer({ 'Cache-Control': 'max-age=60', Vary: '*' }),
    ...twice('MISS', 'MISS'),
  },
  {
    name: '§3 a 404 with max-age is stored',
    origin: answer({ 'Cache-Control': 'max-age=60' }, 'none', 404),
    steps: [
      { expect: { status: 404, cache: 'MISS', body: 'none', calls: 1 } },
      { expect: { status: 404, cache: 'HIT', body: 'none', calls: 1 } },
    ],
  },
  {
    name: '§3 a 500 without explicit freshness is not stored',
    origin: answer({ 'Last-Modified': httpDate(T0 - 3600_000) }, 'boom', 500),
    steps: [{ expect: { status: 500, cache: 'MISS', calls: 1 } }, { expect: { status: 500, cache: 'MISS', calls: 2 } }],
  },
  {
    name: '§3 any final status with explicit freshness is stored (201)',
    origin: answer({ 'Cache-Control': 'max-age=60' }, 'made', 201),
    steps: [
      { expect: { status: 201, cache: 'MISS', calls: 1 } },
      { expect: { status: 201, cache: 'HIT', body: 'made', calls: 1 } },
    ],
  },
  {
    name: '§3 a 206 from the app is not stored as if complete',
    origin: (_req, res, call) => {
      res.status(206).set({ 'Cache-Control': 'max-age=60', 'Content-Range': 'bytes 0-1/5', 'X-Call': String(call) });
      res.send('he');
    },
    steps: [
      { headers: { range: 'bytes=0-1' }, expect: { status: 206, cache: 'MISS', calls: 1 } },
      { expect: { status: 206, cache: 'MISS', calls: 2 } },
    ],
  },
  {
    name: '§5.2.2.3 must-understand with an understood status overrides no-store',
    origin: answer({ 'Cache-Control': 'must-understand, no-store, max-age=60' }),
    ...twice('MISS', 'HIT'),
  },
  {
    name: '§5.2.2.3 must-understand with a status the cache does not know is not stored',
    origin: answer({ 'Cache-Control': 'must-understand, max-age=60' }, 'x', 299),
    steps: [{ expect: { status: 299, cache: 'MISS', calls: 1 } }, { expect: { status: 299, cache: 'MISS', calls: 2 } }],
  },
  {
    name: '§3.5 Authorization + max-age: not stored',
    origin: answer({ 'Cache-Control': 'max-age=60' }),
    steps: [
      { headers: { authorization: 'Bearer a' }, expect: { status: 200, cache: 'BYPASS', calls: 1 } },
      { headers: { authorization: 'Bearer a' }, expect: { status: 200, cache: 'BYPASS', calls: 2 } },
    ],
  },
  {
    name: '§3.5 Authorization + public: stored and shared',
    origin: answer({ 'Cache-Control': 'public, max-age=60' }),
    steps: [
      { headers: { authorization: 'Bearer a' }, expect: { status: 200, cache: 'MISS', calls: 1 } },
      { headers: { authorization: 'Bearer b' }, expect: { status: 200, cache: 'HIT', calls: 1 } },
    ],
  },
  {
    name: '§3.5 Authorization + must-revalidate: stored',
    origin: answer({ 'Cache-Control': 'max-age=60, must-revalidate' }),
    steps: [
      { headers: { authorization: 'Bearer a' }, expect: { status: 200, cache: 'MISS', calls: 1 } },
      { headers: { authorization: 'Bearer a' }, expect: { status: 200, cache: 'HIT', calls: 1 } },
    ],
  },
  {
    name: 'DESIGN Cookie + max-age: not stored, and never served another client’s entry',
    origin: answer({ 'Cache-Control': 'max-age=60' }),
    steps: [
      { headers: { cookie: 'sid=a' }, expect: { status: 200, cache: 'BYPASS', calls: 1 } },
      { expect: { status: 200, cache: 'MISS', calls: 2 } },
      { headers: { cookie: 'sid=a' }, expect: { status: 200, cache: 'BYPASS', calls: 3 } },
      { expect: { status: 200, cache: 'HIT', calls: 3 } },
    ],
  },
  {
    name: 'DESIGN Set-Cookie + max-age: not stored',
    origin: answer({ 'Cache-Control': 'max-age=60', 'Set-Cookie': 'sid=new' }),
    ...twice('MISS', 'MISS'),
  },
  {
    name: 'DESIGN Set-Cookie + s-maxage: stored without the Set-Cookie',
    origin: answer({ 'Cache-Control': 's-maxage=60', 'Set-Cookie': 'sid=new' }),
    steps: [
      { expect: { status: 200, cache: 'MISS', headers: { 'set-cookie': ['sid=new'] }, calls: 1 } },
      { expect: { status: 200, cache: 'HIT', headers: { 'set-cookie': undefined, 'x-call': '1' }, calls: 1 } },
    ],
  },
  {
    name: 'per-request headers are never stored (X-Request-Id, RateLimit, Retry-After)',
    origin: answer({ 'Cache-Control': 'max-age=60', 'X-Request-Id': 'r1', RateLimit: 'limit=5', 'Retry-After': '3' }),
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      {
        expect: {
          status: 200,
          cache: 'HIT',
          headers: { 'x-request-id': undefined, ratelimit: undefined, 'retry-after': undefined, 'x-call': '1' },
          calls: 1,
        },
      },
    ],
  },
  {
    name: 'HEAD is answered from the GET entry; a HEAD response is never stored as the GET',
    origin: answer({ 'Cache-Control': 'max-age=60' }, 'full body'),
    steps: [
      { method: 'HEAD', expect: { status: 200, cache: 'MISS', body: '', calls: 1 } },
      { expect: { status: 200, cache: 'MISS', body: 'full body', calls: 2 } },
      { method: 'HEAD', expect: { status: 200, cache: 'HIT', body: '', headers: { 'content-length': '9' }, calls: 2 } },
      { expect: { status: 200, cache: 'HIT', body: 'full body', calls: 2 } },
    ],
  },
];

describe('RFC 9111 §3 storing responses', () => {
  conformance(cases);
});
