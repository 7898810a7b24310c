/**
 * RFC 9111 §4.4 invalidation: every unsafe method — anything but GET, HEAD, OPTIONS,
 * TRACE, unknown methods included — that gets a 2xx/3xx invalidates the URL and its
 * same-host `Location`/`Content-Location`; errors and other hosts do not. A POST whose
 * response has explicit freshness and `Content-Location` equal to its URL is stored for
 * later GETs (RFC 9110 §9.3.3).
 */
import { describe } from 'vitest';
import { type Case, conformance, type Origin } from './harness.js';

/** GETs are cacheable for 60 s; other methods answer `status` with `headers`. */
function origin(status: number, headers: Record<string, string> = {}): Origin {
  return (req, res, call) => {
    res.setHeader('X-Call', String(call));
    if (req.method === 'GET' || req.method === 'HEAD') {
      res.setHeader('Cache-Control', 'max-age=60');
      res.send(`get ${req.path} #${call}`);
      return;
    }
    res.status(status).set(headers).send(`${req.method} done`);
  };
}

/** GET (stored), `method` on /r, then GET again: MISS when invalidated, HIT when not. */
function invalidates(method: string, status: number, yes: boolean): Case {
  return {
    name: `§4.4 ${method} answered ${status} ${yes ? 'invalidates' : 'does not invalidate'} the URL`,
    origin: origin(status),
    steps: [
      { expect: { status: 200, cache: 'MISS', body: 'get /r #1', calls: 1 } },
      { method, expect: { status, cache: 'BYPASS', calls: 2 } },
      {
        expect: { status: 200, cache: yes ? 'MISS' : 'HIT', body: yes ? 'get /r #3' : 'get /r #1', calls: yes ? 3 : 2 },
      },
    ],
  };
}

const cases: Case[] = [
  invalidates('POST', 200, true),
  invalidates('PUT', 204, true),
  invalidates('DELETE', 200, true),
  invalidates('PATCH', 200, true),
  invalidates('POST', 303, true),
  // Methods the cache knows nothing about are unsafe (RFC 9110 §9.2.1).
  invalidates('PROPPATCH', 207, true),
  invalidates('MKCOL', 201, true),
  invalidates('LINK', 200, true),
  invalidates('UNLINK', 200, true),
  invalidates('PURGE', 200, true),
  invalidates('REPORT', 200, true),
  invalidates('POST', 500, false),
  invalidates('DELETE', 404, false),
  invalidates('OPTIONS', 200, false),
  {
    name: '§4.4 Location and Content-Location on the same host are invalidated too',
    origin: origin(201, { Location: '/items/7', 'Content-Location': 'http://localhost:1/ignored' }),
    steps: [
      { path: '/items/7', expect: { status: 200, cache: 'MISS', body: 'get /items/7 #1' } },
      { path: '/items', expect: { status: 200, cache: 'MISS', body: 'get /items #2' } },
      { path: '/items', method: 'POST', expect: { status: 201, cache: 'BYPASS' } },
      { path: '/items/7', expect: { status: 200, cache: 'MISS', body: 'get /items/7 #4' } },
      { path: '/items', expect: { status: 200, cache: 'MISS', body: 'get /items #5' } },
    ],
  },
  {
    name: '§4.4 a Location on another host is not invalidated (and cannot be used to purge)',
    origin: origin(201, { Location: 'http://elsewhere.example/items/7' }),
    steps: [
      { path: '/items/7', expect: { status: 200, cache: 'MISS', body: 'get /items/7 #1' } },
      { path: '/items', method: 'POST', expect: { status: 201, cache: 'BYPASS' } },
      { path: '/items/7', expect: { status: 200, cache: 'HIT', body: 'get /items/7 #1' } },
    ],
  },
  {
    name: '§4.4 an absolute Location on the same host is invalidated',
    origin: (req, res, call) => {
      if (req.method === 'GET') {
        res.setHeader('Cache-Control', 'max-age=60');
        res.send(`get ${req.path} #${call}`);
        return;
      }
      res.status(201).setHeader('Location', `http://${req.headers.host}/items/9`);
      res.end();
    },
    steps: [
      { path: '/items/9', expect: { status: 200, cache: 'MISS', body: 'get /items/9 #1' } },
      { path: '/items', method: 'POST', expect: { status: 201, cache: 'BYPASS' } },
      { path: '/items/9', expect: { status: 200, cache: 'MISS', body: 'get /items/9 #3' } },
    ],
  },
  {
    name: '§4.4 / RFC 9110 §9.3.3 a POST with explicit freshness and Content-Location = its URL answers later GETs',
    origin: (req, res, call) => {
      if (req.method === 'POST') {
        res.set({ 'Cache-Control': 'max-age=60', 'Content-Location': '/r', 'X-Call': String(call) });
        res.send('posted state');
        return;
      }
      res.send(`get #${call}`);
    },
    steps: [
      { method: 'POST', body: 'x', expect: { status: 200, cache: 'BYPASS', body: 'posted state', calls: 1 } },
      { expect: { status: 200, cache: 'HIT', body: 'posted state', headers: { 'x-call': '1' }, calls: 1 } },
    ],
  },
  {
    name: '§4.4 a POST whose Content-Location is another URL is not stored for GET',
    origin: (req, res, call) => {
      if (req.method === 'POST') {
        res.set({ 'Cache-Control': 'max-age=60', 'Content-Location': '/other' });
        res.send('posted');
        return;
      }
      res.send(`get #${call}`);
    },
    steps: [
      { method: 'POST', body: 'x', expect: { status: 200, cache: 'BYPASS', calls: 1 } },
      { expect: { status: 200, cache: 'MISS', body: 'get #2', calls: 2 } },
    ],
  },
];

describe('RFC 9111 §4.4 invalidation', () => {
  conformance(cases);
});
