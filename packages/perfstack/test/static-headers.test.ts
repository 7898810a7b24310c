/**
 * The preset replays helmet's headers from one recording (packages/perfstack/src/static-headers.ts):
 * the headers must be exactly helmet's, for its defaults and other static options, and helmet
 * itself must run when a CSP directive is computed per request (a nonce).
 */
import { get, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Middleware } from '@perfstack/core';
import cors, { type CorsOptions } from 'cors';
import express from 'express';
import helmet, { type HelmetOptions } from 'helmet';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { staticCors, staticHeaders } from '../src/static-headers.js';

const servers: TestServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

/** The headers an Express app answers with behind `middleware` (without Date). */
async function headersBehind(
  middleware: Middleware,
  init: { method?: string; headers?: Record<string, string>; vary?: string } = {},
): Promise<Record<string, unknown>> {
  const app = express();
  if (init.vary !== undefined) {
    const vary = init.vary;
    app.use((_req, res, next) => {
      res.setHeader('Vary', vary);
      next();
    });
  }
  app.use(middleware as express.RequestHandler);
  app.all('/', (_req, res) => {
    res.json({ ok: true });
  });
  const server = await listen(app as unknown as (req: IncomingMessage, res: ServerResponse) => void);
  servers.push(server);
  const { headers } = await request(server.url, { method: init.method ?? 'GET', headers: init.headers ?? {} });
  const { date: _date, ...rest } = headers;
  return rest;
}

describe('helmet replayed', () => {
  it.each<[string, HelmetOptions]>([
    ['the defaults', {}],
    ['CSP off, HSTS changed', { contentSecurityPolicy: false, strictTransportSecurity: { maxAge: 5 } }],
    ['custom static directives', { contentSecurityPolicy: { directives: { 'img-src': ["'self'", 'cdn.test'] } } }],
    ['frameguard deny, no referrer policy', { frameguard: { action: 'deny' }, referrerPolicy: false }],
  ])('sets exactly what helmet sets, with %s (X-Powered-By removed too)', async (_name, options) => {
    const original = helmet(options) as unknown as Middleware;
    const replayed = staticHeaders(original, options);
    expect(replayed).not.toBe(original);
    const expected = await headersBehind(original);
    expect(expected['x-powered-by']).toBeUndefined();
    expect(await headersBehind(replayed)).toEqual(expected);
  });

  it('keeps helmet itself when a CSP directive is computed per request', () => {
    const options: HelmetOptions = {
      contentSecurityPolicy: {
        directives: { 'script-src': ["'self'", (_req, res) => `'nonce-${(res as { nonce?: string }).nonce}'`] },
      },
    };
    const original = helmet(options) as unknown as Middleware;
    expect(staticHeaders(original, options)).toBe(original);
  });

  it('keeps a middleware that reads the request or does not call next at once', () => {
    const readsRequest: Middleware = (req, res, next) => {
      res.setHeader('x-path', String(req.url));
      next();
    };
    const deferred: Middleware = (_req, res, next) => {
      res.setHeader('x-late', '1');
      setImmediate(next);
    };
    expect(staticHeaders(readsRequest, {})).toBe(readsRequest);
    expect(staticHeaders(deferred, {})).toBe(deferred);
  });
});

describe('CORS replayed for a fixed origin', () => {
  it.each<[string, CorsOptions]>([
    ["origin '*'", { origin: '*' }],
    ['one origin (Vary: Origin)', { origin: 'https://app.test' }],
    ['credentials and exposed headers', { origin: 'https://app.test', credentials: true, exposedHeaders: ['X-Cache'] }],
    ['no origin allowed', { origin: false }],
  ])(
    'sets exactly what cors sets, with %s, on GET, POST, a preflight and after an app Vary',
    async (_name, options) => {
      const original = cors(options) as unknown as Middleware;
      const replayed = staticCors(original, true);
      expect(replayed).not.toBe(original);
      const cases: { method: string; headers: Record<string, string>; vary?: string }[] = [
        { method: 'GET', headers: { origin: 'https://other.test' } },
        { method: 'POST', headers: { origin: 'https://app.test' } },
        { method: 'OPTIONS', headers: { origin: 'https://app.test', 'access-control-request-method': 'PUT' } },
        { method: 'GET', headers: { origin: 'https://app.test' }, vary: 'Accept-Encoding' },
      ];
      for (const init of cases) {
        const expected = await headersBehind(original, init);
        expect(await headersBehind(replayed, init)).toEqual(expected);
      }
    },
  );

  it('keeps cors itself when its headers depend on the request', () => {
    const original = cors({ origin: ['https://a.test', 'https://b.test'] }) as unknown as Middleware;
    expect(staticCors(original, false)).toBe(original);
  });
});

/**
 * What an app sees of the response after `middleware` (and what the client gets), for two
 * requests in a row: the header names in order, `getHeader` of one header, the raw head the
 * client reads (names and values in order, without Date), after the app removed one of the
 * headers, appended to another, and, with `wrap`, had wrapped `res.setHeader` before the layer.
 */
async function seenBehind(middleware: Middleware, wrap = false) {
  const seen: { names: string[]; frame: unknown; wrapped: string[] }[] = [];
  const server = await listen((req, res) => {
    const wrapped: string[] = [];
    if (wrap) {
      const own = res.setHeader;
      res.setHeader = function (this: ServerResponse, name: string, value: string | number | readonly string[]) {
        wrapped.push(name.toLowerCase());
        return own.call(this, name, value);
      } as typeof res.setHeader;
    }
    middleware(req, res, () => {
      seen.push({ names: res.getHeaderNames(), frame: res.getHeader('X-Frame-Options'), wrapped });
      res.removeHeader('x-dns-prefetch-control');
      res.appendHeader('Cross-Origin-Opener-Policy', 'unsafe-none');
      res.end('ok');
    });
  });
  servers.push(server);
  const raw = async () =>
    new Promise<string[]>((resolve, reject) => {
      get(server.url, (res) => {
        res.resume();
        const out: string[] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          if (res.rawHeaders[i] !== 'Date') out.push(`${res.rawHeaders[i]}: ${res.rawHeaders[i + 1]}`);
        }
        res.on('end', () => resolve(out));
      }).on('error', reject);
    });
  return { first: await raw(), second: await raw(), seen };
}

describe('replayed headers through the response API', () => {
  it('helmet: the same names in the same order, getHeader, removeHeader and appendHeader as helmet itself; nothing leaks to the next response', async () => {
    const original = helmet() as unknown as Middleware;
    const replayed = staticHeaders(original, {});
    const expected = await seenBehind(original);
    const actual = await seenBehind(replayed);
    expect(actual).toEqual(expected);
    // The app's appendHeader on one response changed only that response.
    expect(actual.second).toEqual(actual.first);
    expect(actual.first).toContain('Cross-Origin-Opener-Policy: same-origin');
    expect(actual.first).toContain('Cross-Origin-Opener-Policy: unsafe-none');
    expect(actual.first.some((line) => line.startsWith('X-DNS-Prefetch-Control'))).toBe(false);
    expect(actual.seen[0]?.frame).toBe('SAMEORIGIN');
  });

  it('CORS: the same head as cors itself', async () => {
    const original = cors({ origin: 'https://app.test', credentials: true }) as unknown as Middleware;
    const replayed = staticCors(original, true);
    expect(replayed).not.toBe(original);
    expect(await seenBehind(replayed)).toEqual(await seenBehind(original));
  });

  it("an app's own wrapper of res.setHeader sees every header helmet sets", async () => {
    const original = helmet() as unknown as Middleware;
    const expected = await seenBehind(original, true);
    expect(expected.seen[0]?.wrapped).toContain('x-frame-options');
    expect(await seenBehind(staticHeaders(original, {}), true)).toEqual(expected);
  });
});
