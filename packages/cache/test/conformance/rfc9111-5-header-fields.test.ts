/**
 * RFC 9111 §5 header fields: request Cache-Control (§5.2.1) when `requestCacheControl`
 * is on — no-cache, max-age, min-fresh, max-stale, only-if-cached, no-store — and
 * `Pragma: no-cache` (§5.4); off by default (clients cannot defeat the cache). `Age`
 * (§5.1) on answers from the cache.
 */
import { describe } from 'vitest';
import { answer, type Case, conformance, type Origin } from './harness.js';

const etagged: Origin = (req, res, call) => {
  res.setHeader('Cache-Control', 'max-age=60');
  res.setHeader('ETag', '"e1"');
  res.setHeader('X-Seen-INM', String(req.headers['if-none-match'] ?? '-'));
  res.setHeader('X-Call', String(call));
  if (req.headers['if-none-match'] === '"e1"') {
    res.status(304).end();
    return;
  }
  res.send('payload');
};
const on = { requestCacheControl: true };

const cases: Case[] = [
  {
    name: '§5.2.1 request directives are ignored by default',
    origin: etagged,
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      { headers: { 'cache-control': 'no-cache' }, expect: { status: 200, cache: 'HIT', calls: 1 } },
      { headers: { 'cache-control': 'no-store' }, expect: { status: 200, cache: 'HIT', calls: 1 } },
    ],
  },
  {
    name: '§5.2.1.4 no-cache: the entry is revalidated first (304 from the app, stored body)',
    origin: etagged,
    options: on,
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      {
        headers: { 'cache-control': 'no-cache' },
        expect: { status: 200, cache: 'MISS', body: 'payload', headers: { 'x-seen-inm': '"e1"' }, calls: 2 },
      },
    ],
  },
  {
    name: '§5.4 Pragma: no-cache without Cache-Control is no-cache',
    origin: etagged,
    options: on,
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      {
        headers: { pragma: 'no-cache' },
        expect: { status: 200, cache: 'MISS', headers: { 'x-seen-inm': '"e1"' }, calls: 2 },
      },
    ],
  },
  {
    name: '§5.2.1.1 max-age=0 revalidates; max-age=N accepts an entry up to N s old',
    origin: etagged,
    options: on,
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      {
        advance: 10_000,
        headers: { 'cache-control': 'max-age=20' },
        expect: { status: 200, cache: 'HIT', age: '10', calls: 1 },
      },
      { headers: { 'cache-control': 'max-age=5' }, expect: { status: 200, cache: 'MISS', calls: 2 } },
      { headers: { 'cache-control': 'max-age=0' }, expect: { status: 200, cache: 'MISS', calls: 3 } },
    ],
  },
  {
    name: '§5.2.1.3 min-fresh: only an entry fresh for at least N more seconds',
    origin: etagged,
    options: on,
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      {
        advance: 30_000,
        headers: { 'cache-control': 'min-fresh=20' },
        expect: { status: 200, cache: 'HIT', calls: 1 },
      },
      { headers: { 'cache-control': 'min-fresh=40' }, expect: { status: 200, cache: 'MISS', calls: 2 } },
    ],
  },
  {
    name: '§5.2.1.2 max-stale: a stale entry is acceptable within N s',
    origin: answer({ 'Cache-Control': 'max-age=10' }),
    options: on,
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      {
        advance: 15_000,
        headers: { 'cache-control': 'max-stale=10' },
        expect: { status: 200, cache: 'STALE', age: '15', calls: 1 },
      },
      { headers: { 'cache-control': 'max-stale=2' }, expect: { status: 200, cache: 'MISS', calls: 2 } },
    ],
  },
  {
    name: '§5.2.1.2 max-stale does not override must-revalidate',
    origin: answer({ 'Cache-Control': 'max-age=10, must-revalidate' }),
    options: on,
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      { advance: 15_000, headers: { 'cache-control': 'max-stale' }, expect: { status: 200, cache: 'MISS', calls: 2 } },
    ],
  },
  {
    name: '§5.2.1.7 only-if-cached: 504 when nothing is stored, the entry when it is',
    origin: answer({ 'Cache-Control': 'max-age=60' }),
    options: on,
    steps: [
      {
        headers: { 'cache-control': 'only-if-cached' },
        expect: {
          status: 504,
          cache: 'MISS',
          headers: { 'content-type': 'application/problem+json; charset=utf-8' },
          calls: 0,
        },
      },
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      { headers: { 'cache-control': 'only-if-cached' }, expect: { status: 200, cache: 'HIT', calls: 1 } },
    ],
  },
  {
    name: '§5.2.1.5 no-store: not looked up, not stored',
    origin: answer({ 'Cache-Control': 'max-age=60' }),
    options: on,
    steps: [
      { headers: { 'cache-control': 'no-store' }, expect: { status: 200, cache: 'BYPASS', calls: 1 } },
      { expect: { status: 200, cache: 'MISS', calls: 2 } },
    ],
  },
];

describe('RFC 9111 §5 header fields', () => {
  conformance(cases);
});
