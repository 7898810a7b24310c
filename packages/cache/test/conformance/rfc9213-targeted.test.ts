/**
 * RFC 9213 targeted cache-control fields: `CDN-Cache-Control` takes precedence over
 * `Cache-Control` (and `Expires`) for this cache; a configured, more specific field
 * (`targetedCacheControl`) over both; an invalid field is ignored; the fields are removed
 * before the response leaves unless `forwardTargetedCacheControl`.
 */
import { describe } from 'vitest';
import { answer, type Case, conformance, httpDate, T0 } from './harness.js';

const cases: Case[] = [
  {
    name: 'RFC 9213 §2.2 CDN-Cache-Control max-age beats Cache-Control no-store; removed on the way out',
    origin: answer({ 'Cache-Control': 'no-store', 'CDN-Cache-Control': 'max-age=30' }),
    steps: [
      {
        expect: {
          status: 200,
          cache: 'MISS',
          headers: { 'cdn-cache-control': undefined, 'cache-control': 'no-store' },
          calls: 1,
        },
      },
      {
        advance: 29_000,
        expect: { status: 200, cache: 'HIT', age: '29', headers: { 'cdn-cache-control': undefined }, calls: 1 },
      },
      { advance: 1000, expect: { status: 200, cache: 'MISS', calls: 2 } },
    ],
  },
  {
    name: 'RFC 9213 §2.2 CDN-Cache-Control no-store beats Cache-Control max-age',
    origin: answer({ 'Cache-Control': 'max-age=60', 'CDN-Cache-Control': 'no-store' }),
    steps: [{ expect: { status: 200, cache: 'MISS', calls: 1 } }, { expect: { status: 200, cache: 'MISS', calls: 2 } }],
  },
  {
    name: 'RFC 9213 §2.2 a targeted field replaces Expires too',
    origin: answer({ Expires: httpDate(T0 + 3600_000), 'CDN-Cache-Control': 'max-age=5' }),
    steps: [{ expect: { status: 200, cache: 'MISS' } }, { advance: 5000, expect: { status: 200, cache: 'MISS' } }],
  },
  {
    name: 'RFC 9213 §2.1 an invalid CDN-Cache-Control (not a Structured Fields dictionary) is ignored',
    origin: answer({ 'Cache-Control': 'max-age=60', 'CDN-Cache-Control': 'max-age=5 junk' }),
    steps: [
      { expect: { status: 200, cache: 'MISS' } },
      { advance: 30_000, expect: { status: 200, cache: 'HIT', age: '30' } },
    ],
  },
  {
    name: 'RFC 9213 the configured targeted field beats CDN-Cache-Control',
    origin: answer({
      'CDN-Cache-Control': 'max-age=600',
      'Perfstack-Cache-Control': 'max-age=5',
      'Cache-Control': 'no-store',
    }),
    options: { targetedCacheControl: 'Perfstack-Cache-Control' },
    steps: [
      {
        expect: {
          status: 200,
          cache: 'MISS',
          headers: { 'perfstack-cache-control': undefined, 'cdn-cache-control': undefined },
        },
      },
      { advance: 4000, expect: { status: 200, cache: 'HIT', age: '4' } },
      { advance: 1000, expect: { status: 200, cache: 'MISS' } },
    ],
  },
  {
    name: 'RFC 9213 §2.2 must-revalidate in CDN-Cache-Control forbids serving stale on a request max-stale (Cache-Control says nothing)',
    origin: answer({ 'Cache-Control': 'max-age=10', 'CDN-Cache-Control': 'max-age=10, must-revalidate' }),
    options: { requestCacheControl: true },
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      {
        advance: 15_000,
        headers: { 'cache-control': 'max-stale=60' },
        expect: { status: 200, cache: 'MISS', calls: 2 },
      },
    ],
  },
  {
    name: 'RFC 9213 §2.2 without must-revalidate in CDN-Cache-Control, must-revalidate in Cache-Control does not apply to this cache',
    origin: answer({ 'Cache-Control': 'max-age=10, must-revalidate', 'CDN-Cache-Control': 'max-age=10' }),
    options: { requestCacheControl: true },
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      {
        advance: 15_000,
        headers: { 'cache-control': 'max-stale=60' },
        expect: { status: 200, cache: 'STALE', age: '15', calls: 1 },
      },
    ],
  },
  {
    name: 'RFC 9213 forwardTargetedCacheControl leaves the fields on (a CDN in front reads them)',
    origin: answer({ 'CDN-Cache-Control': 'max-age=60' }),
    options: { forwardTargetedCacheControl: true },
    steps: [
      { expect: { status: 200, cache: 'MISS', headers: { 'cdn-cache-control': 'max-age=60' } } },
      { expect: { status: 200, cache: 'HIT', headers: { 'cdn-cache-control': 'max-age=60' } } },
    ],
  },
];

describe('RFC 9213 targeted cache-control fields', () => {
  conformance(cases);
});
