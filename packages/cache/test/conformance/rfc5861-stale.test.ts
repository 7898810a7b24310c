/**
 * RFC 5861: stale-while-revalidate (§3: serve stale at once, refresh in the background)
 * and stale-if-error (§4: a 5xx from the origin is answered from the stale entry),
 * from the response's own directives; must-revalidate forbids both (RFC 9111 §4.2.4).
 */
import { describe } from 'vitest';
import { type Case, conformance } from './harness.js';

const cases: Case[] = [
  {
    name: 'RFC 5861 §3 stale-while-revalidate: STALE at once (the refresh runs in the background)',
    origin: (_req, res, call) => {
      res.setHeader('Cache-Control', 'max-age=10, stale-while-revalidate=30');
      res.send(`version ${call}`);
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'version 1', calls: 1 } },
      { advance: 15_000, expect: { status: 200, cache: 'STALE', age: '15', body: 'version 1' } },
    ],
  },
  {
    name: 'RFC 5861 §3 past the stale-while-revalidate window: fetched',
    origin: (_req, res, call) => {
      res.setHeader('Cache-Control', 'max-age=10, stale-while-revalidate=5');
      res.send(`version ${call}`);
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'version 1', calls: 1 } },
      { advance: 16_000, expect: { status: 200, cache: 'MISS', body: 'version 2', calls: 2 } },
    ],
  },
  {
    name: 'RFC 5861 §4 stale-if-error: a 503 is answered from the stale entry',
    origin: (_req, res, call) => {
      res.setHeader('Cache-Control', 'max-age=10, stale-if-error=60');
      if (call > 1) res.status(503).send('unavailable');
      else res.send('good');
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'good', calls: 1 } },
      { advance: 20_000, expect: { status: 200, cache: 'STALE', age: '20', body: 'good', calls: 2 } },
      { advance: 60_000, expect: { status: 503, cache: 'MISS', body: 'unavailable', calls: 3 } },
    ],
  },
  {
    name: 'RFC 9111 §4.2.4 must-revalidate: no stale-if-error',
    origin: (_req, res, call) => {
      res.setHeader('Cache-Control', 'max-age=10, must-revalidate, stale-if-error=60');
      if (call > 1) res.status(503).send('unavailable');
      else res.send('good');
    },
    steps: [
      { expect: { status: 200, cache: 'MISS', calls: 1 } },
      { advance: 20_000, expect: { status: 503, cache: 'MISS', body: 'unavailable', calls: 2 } },
    ],
  },
];

describe('RFC 5861 stale-while-revalidate and stale-if-error', () => {
  conformance(cases);
});
