/**
 * RFC 9111 §4.2 freshness: lifetime (§4.2.1: s-maxage > max-age > Expires − Date >
 * heuristic > the route's ttl), invalid values make a response stale (not "absent"),
 * heuristics (§4.2.2), age (§4.2.3; `Age` parsing §5.1), and `Date` served as stored.
 * A stale entry with a validator is revalidated (the app is asked, X-Cache: MISS); one
 * without is fetched again.
 */
import { cache } from '@perfstack/cache';
import { describe } from 'vitest';
import { answer, type Case, conformance, httpDate, T0 } from './harness.js';

/** Stored at T0, then asked again `at` ms later: HIT while fresh, MISS (origin called) once stale. */
const freshFor = (name: string, headers: Record<string, string | string[]>, seconds: number): Case => ({
  name,
  origin: answer(headers),
  steps: [
    { expect: { status: 200, cache: 'MISS', calls: 1 } },
    ...(seconds > 1
      ? [{ advance: (seconds - 1) * 1000, expect: { status: 200, cache: 'HIT', age: String(seconds - 1), calls: 1 } }]
      : []),
    { advance: seconds > 1 ? 1000 : 0, expect: { status: 200, cache: 'MISS', calls: 2 } },
  ],
});

/** Stale from the start (invalid freshness): the second request goes to the origin again. */
const staleAtOnce = (name: string, headers: Record<string, string | string[]>): Case => ({
  name,
  origin: answer(headers),
  steps: [{ expect: { status: 200, cache: 'MISS', calls: 1 } }, { expect: { status: 200, cache: 'MISS', calls: 2 } }],
});

const cases: Case[] = [
  freshFor('§4.2.1 max-age=60: fresh for 60 s', { 'Cache-Control': 'max-age=60' }, 60),
  freshFor('§4.2.1 s-maxage beats max-age', { 'Cache-Control': 'max-age=600, s-maxage=5' }, 5),
  freshFor('§4.2.1 max-age beats Expires', { 'Cache-Control': 'max-age=5', Expires: httpDate(T0 + 600_000) }, 5),
  freshFor('§4.2.1 Expires − Date', { Expires: httpDate(T0 + 30_000), Date: httpDate(T0) }, 30),
  freshFor('§1.2.2 max-age with leading zeros', { 'Cache-Control': 'max-age=0010' }, 10),
  freshFor('§5.2 directive names are case-insensitive', { 'Cache-Control': 'MAX-AGE=10' }, 10),
  freshFor('§5.2 unknown extensions are ignored', { 'Cache-Control': 'foo="bar, baz", max-age=10, x-y' }, 10),
  freshFor('§4.2.2 heuristic: 10% of the Last-Modified age', { 'Last-Modified': httpDate(T0 - 100_000) }, 10),
  staleAtOnce('§4.2.1 Expires in the past', { Expires: httpDate(T0 - 60_000) }),
  staleAtOnce('§4.2.1 Expires: 0 (invalid) is stale', { Expires: '0' }),
  staleAtOnce('§4.2.1 Expires: -1 (invalid) is stale', { Expires: '-1' }),
  staleAtOnce('§4.2.1 Expires: ISO 8601 (invalid) is stale', { Expires: '2099-01-01T00:00:00Z' }),
  staleAtOnce('§4.2.1 Expires: no GMT (invalid) is stale', { Expires: 'Thu, 01 Jan 2099 00:00:00' }),
  staleAtOnce('§4.2.1 Expires: garbage is stale', { Expires: 'tomorrow' }),
  staleAtOnce('§4.2.1 max-age=-1 (invalid) is stale', { 'Cache-Control': 'max-age=-1' }),
  staleAtOnce('§5.2.2.1 max-age="3600" (quoted form forbidden) is stale', { 'Cache-Control': 'max-age="3600"' }),
  staleAtOnce('§4.2.1 max-age=0 is stale', { 'Cache-Control': 'max-age=0' }),
  {
    name: '§4.2.1 an invalid Expires beats the route ttl (stale, not absent)',
    origin: answer({ Expires: '0' }),
    routes: (app) => {
      app.get('/r', cache({ ttl: '5m' }), (_req, res) => {
        res.setHeader('Expires', '0');
        res.send('routed');
      });
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'routed' } },
      { expect: { status: 200, cache: 'MISS', body: 'routed' } },
    ],
  },
  {
    name: '§4.2.1 an invalid max-age beats the route ttl; overrideFreshness restores it',
    origin: answer({}),
    routes: (app) => {
      app.get('/r', cache({ ttl: '5m' }), (_req, res) => {
        res.setHeader('Cache-Control', 'max-age=-1');
        res.send('plain');
      });
      app.get('/o', cache({ ttl: '5m', overrideFreshness: true }), (_req, res) => {
        res.setHeader('Cache-Control', 'max-age=-1');
        res.send('overridden');
      });
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'plain' } },
      { expect: { status: 200, cache: 'MISS', body: 'plain' } },
      { path: '/o', expect: { status: 200, cache: 'MISS', body: 'overridden' } },
      { path: '/o', advance: 299_000, expect: { status: 200, cache: 'HIT', age: '299', body: 'overridden' } },
    ],
  },
  {
    name: '§4.2.1 the route ttl applies when the response says nothing',
    origin: answer({}),
    routes: (app) => {
      app.get('/r', cache({ ttl: '10s' }), (_req, res) => {
        res.send('routed');
      });
    },
    steps: [
      { expect: { status: 200, cache: 'MISS' } },
      { advance: 9000, expect: { status: 200, cache: 'HIT', age: '9' } },
      { advance: 1000, expect: { status: 200, cache: 'MISS' } },
    ],
  },
  {
    name: '§4.2.2 heuristics switched off: Last-Modified alone is not stored',
    origin: answer({ 'Last-Modified': httpDate(T0 - 100_000) }),
    options: { heuristicFreshness: false },
    steps: [{ expect: { status: 200, cache: 'MISS', calls: 1 } }, { expect: { status: 200, cache: 'MISS', calls: 2 } }],
  },
  {
    name: '§4.2.3 Age from upstream counts against the lifetime',
    origin: answer({ 'Cache-Control': 'max-age=60', Age: '50' }),
    steps: [
      // a miss passes the upstream Age on as it came
      { expect: { status: 200, cache: 'MISS', age: '50', calls: 1 } },
      { advance: 5000, expect: { status: 200, cache: 'HIT', age: '55', calls: 1 } },
      { advance: 5000, expect: { status: 200, cache: 'MISS', calls: 2 } },
    ],
  },
  {
    name: '§5.1 Age: 7200.0 is not a delta-seconds value: ignored',
    origin: answer({ 'Cache-Control': 'max-age=60', Age: '7200.0' }),
    steps: [
      { expect: { status: 200, cache: 'MISS', age: '7200.0', calls: 1 } },
      { advance: 3000, expect: { status: 200, cache: 'HIT', age: '3', calls: 1 } },
    ],
  },
  {
    name: '§5.1 Age: -5 is ignored',
    origin: (_req, res) => {
      res.setHeader('Cache-Control', 'max-age=60');
      res.setHeader('Age', '-5');
      res.send('x');
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', age: '-5' } },
      { advance: 2000, expect: { status: 200, cache: 'HIT', age: '2' } },
    ],
  },
  {
    name: '§5.1 Age: abc is ignored',
    origin: answer({ 'Cache-Control': 'max-age=60', Age: 'abc' }),
    steps: [
      { expect: { status: 200, cache: 'MISS', age: 'abc' } },
      { advance: 4000, expect: { status: 200, cache: 'HIT', age: '4' } },
    ],
  },
  {
    name: '§5.1 Age as a list: the first valid member',
    origin: answer({ 'Cache-Control': 'max-age=60', Age: 'x, 20, 30' }),
    steps: [
      { expect: { status: 200, cache: 'MISS', age: 'x, 20, 30' } },
      { advance: 1000, expect: { status: 200, cache: 'HIT', age: '21' } },
    ],
  },
  {
    name: '§4.2.3 apparent age: an origin Date 40 s old counts',
    origin: (_req, res, _call, now) => {
      res.setHeader('Cache-Control', 'max-age=60');
      res.setHeader('Date', httpDate(now - 40_000));
      res.send('dated');
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      { advance: 10_000, expect: { status: 200, cache: 'HIT', age: '50', calls: 1 } },
      { advance: 10_000, expect: { status: 200, cache: 'MISS', calls: 2 } },
    ],
  },
  {
    name: '§4.2.3 the stored Date is served as stored; Age is computed',
    origin: answer({ 'Cache-Control': 'max-age=600' }),
    steps: [
      { expect: { status: 200, cache: 'MISS' } },
      { advance: 120_000, expect: { status: 200, cache: 'HIT', age: '120', headers: { date: httpDate(T0) } } },
    ],
  },
];

describe('RFC 9111 §4.2 freshness and age', () => {
  conformance(cases);
});
