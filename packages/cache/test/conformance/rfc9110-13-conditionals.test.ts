/**
 * RFC 9110 §13 conditional requests answered from a stored entry: If-None-Match with weak
 * comparison (§13.1.2, `*` included), If-Modified-Since against Last-Modified, else the
 * stored Date (RFC 9111 §4.3.2), If-None-Match taking precedence (§13.2.2), and no 304
 * for a stored non-2xx (§13.2.1).
 */
import { describe } from 'vitest';
import { answer, type Case, conformance, httpDate, T0 } from './harness.js';

const stored = (
  headers: Record<string, string>,
  conditional: Record<string, string>,
  status: number,
  body: string,
  origin = answer({ 'Cache-Control': 'max-age=60', ...headers }, 'content'),
): Case => ({
  name: '',
  origin,
  steps: [
    { expect: { status: 200, cache: 'MISS', calls: 1 } },
    { headers: conditional, expect: { status, cache: 'HIT', body, calls: 1 } },
  ],
});

const named = (name: string, c: Case): Case => ({ ...c, name });

const cases: Case[] = [
  named('§13.1.2 If-None-Match equal strong tag → 304', stored({ ETag: '"s1"' }, { 'if-none-match': '"s1"' }, 304, '')),
  named(
    '§13.1.2 If-None-Match weak vs strong tag matches (weak comparison) → 304',
    stored({ ETag: '"s1"' }, { 'if-none-match': 'W/"s1"' }, 304, ''),
  ),
  named(
    '§13.1.2 If-None-Match in a list → 304',
    stored({ ETag: 'W/"w1"' }, { 'if-none-match': '"x", W/"w1"' }, 304, ''),
  ),
  named('§13.1.2 If-None-Match: * → 304', stored({ ETag: '"s1"' }, { 'if-none-match': '*' }, 304, '')),
  named(
    '§13.1.2 If-None-Match another tag → 200',
    stored({ ETag: '"s1"' }, { 'if-none-match': '"s2"' }, 200, 'content'),
  ),
  named(
    '§13.1.3 If-Modified-Since at Last-Modified → 304',
    stored({ 'Last-Modified': httpDate(T0 - 3600_000) }, { 'if-modified-since': httpDate(T0 - 3600_000) }, 304, ''),
  ),
  named(
    '§13.1.3 If-Modified-Since before Last-Modified → 200',
    stored(
      { 'Last-Modified': httpDate(T0 - 3600_000) },
      { 'if-modified-since': httpDate(T0 - 7200_000) },
      200,
      'content',
    ),
  ),
  named(
    'RFC 9111 §4.3.2 If-Modified-Since against the stored Date when there is no Last-Modified → 304',
    stored({}, { 'if-modified-since': httpDate(T0 + 1000) }, 304, ''),
  ),
  named(
    '§13.1.3 an invalid If-Modified-Since is ignored → 200',
    stored({ 'Last-Modified': httpDate(T0 - 3600_000) }, { 'if-modified-since': '0' }, 200, 'content'),
  ),
  // One strict HTTP-date parser (RFC 9110 §5.6.7) everywhere: these are dates Date.parse
  // reads (the cache answered 304 to each before), and not HTTP-dates.
  named(
    '§13.1.3 an ISO 8601 If-Modified-Since (not an HTTP-date) is ignored → 200',
    stored(
      { 'Last-Modified': httpDate(T0 - 3600_000) },
      { 'if-modified-since': new Date(T0).toISOString() },
      200,
      'content',
    ),
  ),
  named(
    '§13.1.3 an If-Modified-Since with a numeric zone (+0000, not GMT) is ignored → 200',
    stored(
      { 'Last-Modified': httpDate(T0 - 3600_000) },
      { 'if-modified-since': httpDate(T0).replace('GMT', '+0000') },
      200,
      'content',
    ),
  ),
  named(
    '§8.8.2 a Last-Modified that is not an HTTP-date is no validator: If-Modified-Since is compared with the stored Date → 200',
    stored(
      { 'Last-Modified': new Date(T0 - 3600_000).toISOString() },
      { 'if-modified-since': httpDate(T0 - 1800_000) },
      200,
      'content',
    ),
  ),
  named(
    '§5.6.7 the obsolete RFC 850 and asctime forms are HTTP-dates → 304',
    stored(
      { 'Last-Modified': httpDate(T0 - 3600_000) },
      { 'if-modified-since': 'Thursday, 01-Jan-26 12:00:00 GMT' },
      304,
      '',
    ),
  ),
  named(
    '§5.6.7 asctime If-Modified-Since → 304',
    stored({ 'Last-Modified': httpDate(T0 - 3600_000) }, { 'if-modified-since': 'Thu Jan  1 12:00:00 2026' }, 304, ''),
  ),
  named(
    '§13.2.2 If-None-Match wins over If-Modified-Since → 200',
    stored(
      { ETag: '"s1"', 'Last-Modified': httpDate(T0 - 3600_000) },
      { 'if-none-match': '"other"', 'if-modified-since': httpDate(T0) },
      200,
      'content',
    ),
  ),
  {
    name: '§13.2.1 a stored 404 is never turned into a 304',
    origin: answer({ 'Cache-Control': 'max-age=60', ETag: '"n"' }, 'missing', 404),
    steps: [
      { expect: { status: 404, cache: 'MISS' } },
      { headers: { 'if-none-match': '"n"' }, expect: { status: 404, cache: 'HIT', body: 'missing' } },
    ],
  },
  {
    name: '§15.4.5 a 304 from the cache carries the validators, Cache-Control and the stored Date',
    origin: answer({ 'Cache-Control': 'max-age=60', ETag: '"s1"' }),
    steps: [
      { expect: { status: 200, cache: 'MISS' } },
      {
        advance: 5000,
        headers: { 'if-none-match': '"s1"' },
        expect: {
          status: 304,
          cache: 'HIT',
          age: '5',
          body: '',
          headers: { etag: '"s1"', 'cache-control': 'max-age=60', date: httpDate(T0), 'content-length': undefined },
        },
      },
    ],
  },
];

describe('RFC 9110 §13 conditional requests', () => {
  conformance(cases);
});
