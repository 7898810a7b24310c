import http from 'node:http';
import { dashboard } from '@perfstack/dashboard';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { buildApp } from './app.js';
import { fakeSources } from './fakes.js';

let server: TestServer | undefined;
let closeBoard: (() => Promise<void>) | undefined;
afterEach(async () => {
  await closeBoard?.();
  await server?.close();
  server = undefined;
  closeBoard = undefined;
});

async function start(options: Parameters<typeof buildApp>[0] = {}) {
  const built = buildApp({ instanceId: 'a', ...options });
  server = await listen(http.createServer(built.app));
  closeBoard = () => built.board.close();
  const page = await request(`${server.url}/dashboard/`);
  const token = /<meta name="csrf-token" content="([^"]+)">/.exec(page.text)?.[1] ?? '';
  const origin = server.url;
  const host = origin.slice('http://'.length);
  /** A POST as the page's own script sends it. */
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    request(`${origin}/dashboard${path}`, {
      method: 'POST',
      headers: {
        Host: host,
        Origin: origin,
        'Sec-Fetch-Site': 'same-origin',
        'Content-Type': 'application/json',
        'X-CSRF-Token': token,
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  return { ...built, token, post, origin };
}

const problem = (status: number, code: string, detail: string, extra: Record<string, unknown> = {}) => ({
  type: `urn:perfstack:problem:${code.toLowerCase().replaceAll('_', '-')}`,
  title: {
    400: 'Bad Request',
    403: 'Forbidden',
    404: 'Not Found',
    413: 'Payload Too Large',
    415: 'Unsupported Media Type',
  }[status],
  status,
  detail,
  code,
  ...extra,
});

describe('actions', () => {
  it('invalidates the cache by tag, key or prefix', async () => {
    const { post, sources, origin } = await start();
    for (const id of [1, 2, 3]) await request(`${origin}/api/items/${id}`);
    const byTag = await post('/api/cache/invalidate', { tags: ['items'] });
    expect(byTag.status).toBe(200);
    expect(byTag.headers['cache-control']).toBe('no-store');
    expect(byTag.json()).toEqual({ ok: true, invalidated: 3, tags: ['items'] });
    await request(`${origin}/api/items/1`);
    expect((await post('/api/cache/invalidate', { key: '/api/items/1' })).json()).toEqual({
      ok: true,
      invalidated: 1,
      key: '/api/items/1',
    });
    expect((await post('/api/cache/invalidate', { prefix: '/api/' })).json()).toEqual({
      ok: true,
      invalidated: 0,
      prefix: '/api/',
    });
    expect(sources.cache.invalidations).toEqual([{ tags: ['items'] }, { key: '/api/items/1' }, { prefix: '/api/' }]);
  });

  it('resets a rate-limit key', async () => {
    const { post, sources } = await start();
    const res = await post('/api/rate-limit/reset', { key: '203.0.113.7' });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ ok: true, key: '203.0.113.7' });
    expect(sources.rateLimit.resets).toEqual(['203.0.113.7']);
  });

  it('resets one breaker by name, or all; an unknown name is 404', async () => {
    const { post, sources, origin } = await start();
    for (let i = 0; i < 3; i++) await request(`${origin}/api/flaky`);
    expect(sources.circuitBreaker.isOpen('GET /api/flaky')).toBe(true);
    const unknown = await post('/api/breakers/reset', { name: 'nope' });
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toEqual(problem(404, 'NOT_FOUND', 'No breaker has that name.'));
    const one = await post('/api/breakers/reset', { name: 'GET /api/flaky' });
    expect(one.status).toBe(200);
    expect(one.json()).toEqual({
      ok: true,
      reset: 'GET /api/flaky',
      breakers: [{ name: 'GET /api/flaky', state: 'closed', failures: 0, successes: 0, rejected: 0, timeouts: 0 }],
    });
    expect(sources.circuitBreaker.isOpen('GET /api/flaky')).toBe(false);
    expect((await post('/api/breakers/reset', {})).json()).toMatchObject({ ok: true, reset: 'all' });
  });

  it.each([
    ['a non-object', [1], 'The body must be a JSON object.'],
    ['an unknown member', { tags: ['a'], evil: 1 }, 'Unknown member "evil"; expected tags or key or prefix.'],
    ['two selectors', { tags: ['a'], key: 'k' }, 'Send exactly one of "tags", "key" or "prefix".'],
    ['no selector', {}, 'Send exactly one of "tags", "key" or "prefix".'],
    ['empty tags', { tags: [] }, '"tags" must be an array of 1 to 100 tags.'],
    ['a non-string tag', { tags: [1] }, '"tags[0]" must be a non-empty string of at most 2048 characters.'],
    ['an empty key', { key: '' }, '"key" must be a non-empty string of at most 2048 characters.'],
  ])('refuses %s with 400', async (_name, body, detail) => {
    const { post, sources } = await start();
    const res = await post('/api/cache/invalidate', body);
    expect(res.status).toBe(400);
    expect(res.json()).toEqual(problem(400, 'BAD_REQUEST', detail));
    expect(sources.cache.invalidations).toEqual([]);
  });

  it('refuses malformed JSON (400) and a body over the limit (413)', async () => {
    const { post } = await start({ bodyLimit: '1kb' });
    const bad = await post('/api/rate-limit/reset', '{"key":');
    expect(bad.status).toBe(400);
    expect(bad.json()).toEqual(problem(400, 'BAD_REQUEST', 'The body is not valid JSON.'));
    const big = await post('/api/rate-limit/reset', { key: 'x'.repeat(2000) });
    expect(big.status).toBe(413);
    expect(big.json()).toEqual(
      problem(413, 'PAYLOAD_TOO_LARGE', 'Action bodies are limited to 1024 bytes.', { limit: 1024 }),
    );
  });

  it('a layer that is not configured → 404', async () => {
    const board = dashboard({ instanceId: 'x', basePath: '/d' });
    closeBoard = () => board.close();
    server = await listen((req, res) => board(req, res, () => res.end()));
    const token =
      /<meta name="csrf-token" content="([^"]+)">/.exec((await request(`${server.url}/d/`)).text)?.[1] ?? '';
    const res = await request(`${server.url}/d/api/cache/invalidate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token },
      body: '{"tags":["a"]}',
    });
    expect(res.status).toBe(404);
    expect(res.json()).toEqual(problem(404, 'NOT_FOUND', 'No cache is configured on this dashboard.'));
  });

  it('works after express.json() already read the body', async () => {
    const sources = fakeSources();
    const board = dashboard({ instanceId: 'x', sources });
    closeBoard = () => board.close();
    const app = express();
    app.use(express.json());
    app.use('/dashboard', board);
    server = await listen(http.createServer(app));
    const token =
      /<meta name="csrf-token" content="([^"]+)">/.exec((await request(`${server.url}/dashboard/`)).text)?.[1] ?? '';
    const res = await request(`${server.url}/dashboard/api/rate-limit/reset`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': token },
      body: '{"key":"k1"}',
    });
    expect(res.status).toBe(200);
    expect(sources.rateLimit.resets).toEqual(['k1']);
  });
});

describe('CSRF', () => {
  const csrf = (detail: string) => problem(403, 'FORBIDDEN', detail, { reason: 'csrf' });

  it.each([
    ['no token', { 'X-CSRF-Token': '' }, csrf('The X-CSRF-Token header is missing.')],
    ['a wrong token', { 'X-CSRF-Token': 'A'.repeat(43) }, csrf('The X-CSRF-Token header is not valid.')],
    ['a short token', { 'X-CSRF-Token': 'abc' }, csrf('The X-CSRF-Token header is not valid.')],
    [
      'a cross-origin Origin',
      { Origin: 'https://evil.example' },
      csrf('Cross-origin request refused (Origin does not match Host).'),
    ],
    ['Origin: null', { Origin: 'null' }, csrf('Cross-origin request refused (Origin does not match Host).')],
    [
      'an Origin on another port',
      { Origin: 'http://127.0.0.1:1' },
      csrf('Cross-origin request refused (Origin does not match Host).'),
    ],
    [
      'Sec-Fetch-Site: cross-site',
      { 'Sec-Fetch-Site': 'cross-site' },
      csrf('Cross-site request refused (Sec-Fetch-Site: cross-site).'),
    ],
    [
      'Sec-Fetch-Site: same-site',
      { 'Sec-Fetch-Site': 'same-site' },
      csrf('Cross-site request refused (Sec-Fetch-Site: same-site).'),
    ],
    [
      'a urlencoded form',
      { 'Content-Type': 'application/x-www-form-urlencoded' },
      csrf('Form submissions (application/x-www-form-urlencoded) are refused; send application/json.'),
    ],
    [
      'a multipart form',
      { 'Content-Type': 'multipart/form-data; boundary=x' },
      csrf('Form submissions (multipart/form-data) are refused; send application/json.'),
    ],
    [
      'a text/plain form',
      { 'Content-Type': 'text/plain' },
      csrf('Form submissions (text/plain) are refused; send application/json.'),
    ],
    [
      'another type',
      { 'Content-Type': 'application/xml' },
      problem(415, 'UNSUPPORTED_MEDIA_TYPE', 'Actions take an application/json body.'),
    ],
  ])('refuses %s and runs nothing', async (_name, headers, expected) => {
    const { post, sources } = await start();
    const res = await post('/api/breakers/reset', {}, headers);
    expect(res.status).toBe(expected.status);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.json()).toEqual(expected);
    expect(sources.rateLimit.resets).toEqual([]);
  });

  it('a script client without Origin and Sec-Fetch-Site needs the token only', async () => {
    const { token, origin, sources } = await start();
    const res = await request(`${origin}/dashboard/api/rate-limit/reset`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json; charset=utf-8', 'X-CSRF-Token': token },
      body: '{"key":"k"}',
    });
    expect(res.status).toBe(200);
    expect(sources.rateLimit.resets).toEqual(['k']);
  });

  it('each dashboard has its own token', async () => {
    const { token } = await start();
    const other = dashboard({ instanceId: 'y' });
    const otherServer = await listen((req, res) => other(req, res, () => res.end()));
    try {
      const otherToken = /<meta name="csrf-token" content="([^"]+)">/.exec(
        (await request(`${otherServer.url}/`)).text,
      )?.[1];
      expect(otherToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(otherToken).not.toBe(token);
    } finally {
      await other.close();
      await otherServer.close();
    }
  });
});
