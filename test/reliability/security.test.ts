/**
 * Security through the full stack: the dashboard and its endpoints refuse remote clients
 * without credentials (a real second host: another network namespace) whatever forwarding
 * headers they send; no path traversal through dashboard assets; CSRF-safe actions; no
 * secret reaches the logs on any error path; the cache never serves one user's response to
 * another; rate-limit keys cannot be spoofed through headers from untrusted peers.
 */
import http, { type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import fc from 'fast-check';
import { cache, type PerformanceStack, type PerformanceStackOptions, performanceStack } from 'perfstack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../helpers/http.js';
import { type Remote, remoteClient } from './netns.js';
import { raw } from './raw.js';

const quiet = { warn() {}, error() {} };
const stacks: PerformanceStack[] = [];
const servers: Server[] = [];

async function serve(app: http.RequestListener, host = '127.0.0.1'): Promise<string> {
  const server = http.createServer(app);
  server.keepAliveTimeout = 500;
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return `http://${host}:${(server.address() as AddressInfo).port}`;
}

function fullStack(options: PerformanceStackOptions): PerformanceStack {
  const stack = performanceStack({
    env: false,
    log: quiet,
    logger: { destination: { write() {} } as never },
    ...options,
  });
  stacks.push(stack);
  return stack;
}

/** An Express app with the stack, its endpoints, and a few routes. */
function appWith(stack: PerformanceStack, routes?: (app: express.Express) => void): express.Express {
  const app = express();
  app.use(stack);
  app.use('/dashboard', stack.dashboard());
  app.get('/metrics', stack.metrics());
  app.get('/health', stack.health());
  app.get('/c', cache({ ttl: '1m' }), (_req, res) => {
    res.json({ cached: true, at: Date.now() });
  });
  routes?.(app);
  return app;
}

let remote: Remote;
beforeAll(() => {
  remote = remoteClient();
});
afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
  for (const stack of stacks) await stack.close();
  remote?.close();
});

const SPOOF = {
  'x-forwarded-for': '127.0.0.1',
  forwarded: 'for=127.0.0.1;proto=http',
  'x-real-ip': '127.0.0.1',
  'x-forwarded-host': 'localhost',
  'x-client-ip': '127.0.0.1',
};

describe('dashboard access from a real remote client', () => {
  it('refuses the page, snapshot, stream, actions, /metrics and /health without credentials, spoofed X-Forwarded-For or not', async () => {
    const stack = fullStack({});
    const app = appWith(stack);
    const local = await serve(app);
    const far = await serve(app, remote.serverAddress);
    const paths = [
      '/dashboard',
      '/dashboard/',
      '/dashboard/api/snapshot',
      '/dashboard/api/stream',
      '/metrics',
      '/health',
    ];
    const results = await remote.send([
      ...paths.map((p) => ({ url: `${far}${p}` })),
      ...paths.map((p) => ({ url: `${far}${p}`, headers: SPOOF })),
      {
        url: `${far}/dashboard/api/cache/invalidate`,
        method: 'POST',
        headers: { ...SPOOF, 'content-type': 'application/json' },
        body: '{"prefix":"/"}',
      },
    ]);
    for (const r of results) {
      expect(r.error).toBeUndefined();
      expect(r.status).toBe(403);
      expect(r.headers?.['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(r.body).not.toContain('csrf-token');
      expect(r.body).not.toContain('perfstack_');
    }
    // the very same app answers loopback clients (and the app's routes answer everyone)
    expect((await request(`${local}/dashboard/api/snapshot`)).status).toBe(200);
    const [appRoute] = await remote.send([{ url: `${far}/c` }]);
    expect(appRoute?.status).toBe(200);
    expect(
      remote.kind === 'netns' ? 'a second network namespace' : `another interface (${remote.clientAddress})`,
    ).toBeTruthy();
  });

  it('with auth configured: remote clients need the token, loopback too; a spoofed header does not replace it', async () => {
    const stack = fullStack({ dashboard: { auth: { token: 'rel-token-0123456789' } } });
    const app = appWith(stack);
    const local = await serve(app);
    const far = await serve(app, remote.serverAddress);
    const results = await remote.send([
      { url: `${far}/dashboard/api/snapshot`, headers: SPOOF },
      { url: `${far}/dashboard/api/snapshot`, headers: { authorization: 'Bearer wrong-token-0123456789' } },
      { url: `${far}/dashboard/api/snapshot`, headers: { authorization: 'Bearer rel-token-0123456789' } },
      { url: `${far}/metrics`, headers: { authorization: 'Bearer rel-token-0123456789' } },
    ]);
    expect(results.map((r) => r.status)).toEqual([401, 401, 200, 200]);
    expect(results[0]?.headers?.['www-authenticate']).toMatch(/^Bearer realm="perfstack"/);
    expect((await request(`${local}/dashboard/api/snapshot`)).status).toBe(401);
  });
});

describe('dashboard assets and actions', () => {
  let base: string;
  let port: number;
  beforeAll(async () => {
    const stack = fullStack({});
    base = await serve(appWith(stack));
    port = Number(new URL(base).port);
  });

  it.each([
    '/dashboard/assets/../package.json',
    '/dashboard/assets/../../package.json',
    '/dashboard/assets/%2e%2e/package.json',
    '/dashboard/assets/%2e%2e%2fpackage.json',
    '/dashboard/assets/..%2F..%2Fpackage.json',
    '/dashboard/assets/%252e%252e%252fpackage.json',
    '/dashboard/assets/..%5c..%5cpackage.json',
    '/dashboard/assets/app.js%00.svg',
    '/dashboard/assets/./app.js/..',
    '/dashboard/assets//etc/passwd',
    '/dashboard/assets/%2fetc%2fpasswd',
    '/dashboard/assets/',
    '/dashboard/assets/index.html',
    '/dashboard/../../../../etc/passwd',
  ])('no traversal: %s', async (path) => {
    const res = await raw(port, `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
    expect(res.timedOut).toBe(false);
    expect(res.status).toBe(404);
    expect(res.body).not.toContain('"dependencies"');
    expect(res.body).not.toContain('root:');
    expect(res.body).not.toContain('{{csrfToken}}');
  });

  it('serves the known assets (sanity: the route works)', async () => {
    const res = await request(`${base}/dashboard/assets/app.js`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8');
  });

  it('actions need the page token, a same-origin browser context and JSON; refused ones change nothing', async () => {
    const page = await request(`${base}/dashboard/`);
    expect(page.status).toBe(200);
    const token = /<meta name="csrf-token" content="([^"]+)"/.exec(page.text)?.[1] as string;
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await request(`${base}/c`)).headers['x-cache']).toBe('MISS');
    const host = new URL(base).host;
    const post = (headers: Record<string, string>, body = '{"prefix":"/c"}') =>
      request(`${base}/dashboard/api/cache/invalidate`, { method: 'POST', headers: { host, ...headers }, body });
    const json = { 'content-type': 'application/json' };
    const refused = [
      await post(json),
      await post({ ...json, 'x-csrf-token': 'forged' }),
      await post({ ...json, 'x-csrf-token': token, origin: 'https://evil.example' }),
      await post({ ...json, 'x-csrf-token': token, origin: 'null' }),
      await post({ ...json, 'x-csrf-token': token, 'sec-fetch-site': 'cross-site' }),
      await post({ ...json, 'x-csrf-token': token, 'sec-fetch-site': 'same-site' }),
      await post({ 'content-type': 'text/plain', 'x-csrf-token': token }),
      await post({ 'content-type': 'application/x-www-form-urlencoded', 'x-csrf-token': token }, 'prefix=/c'),
      await post({ 'content-type': 'multipart/form-data; boundary=x', 'x-csrf-token': token }),
    ];
    for (const res of refused) {
      expect(res.status).toBe(403);
      expect(res.json()).toMatchObject({ code: 'FORBIDDEN', status: 403 });
    }
    // a GET never runs an action
    expect((await request(`${base}/dashboard/api/cache/invalidate?prefix=/c`)).status).toBe(405);
    expect((await request(`${base}/c`)).headers['x-cache']).toBe('HIT'); // nothing was invalidated
    const ok = await post({ ...json, 'x-csrf-token': token, origin: base, 'sec-fetch-site': 'same-origin' });
    expect(ok.status).toBe(200);
    expect((await request(`${base}/c`)).headers['x-cache']).toBe('MISS');
  });
});

describe('no secret reaches the logs on any error path', () => {
  const SECRET = 'S3cr3tV4lue9f8e7d6c5b4a';
  const lines: string[] = [];
  const problems: string[] = [];
  let base: string;

  beforeAll(async () => {
    const stack = performanceStack({
      env: false,
      log: { warn: (m: string) => problems.push(m), error: (m: string) => problems.push(m) },
      logger: { destination: { write: (line: string) => lines.push(String(line)) } as never },
      sizeLimit: { limit: '1kb' },
      rateLimit: { limit: 1000, window: '1m' },
      circuitBreaker: { timeout: '200ms', failureThreshold: 2, resetTimeout: '1m', maxConcurrent: false },
    });
    stacks.push(stack);
    const limited = stack.layers.rateLimit?.route({ limit: 1, window: '1m', name: 'one' });
    const app = express();
    app.use(stack);
    app.get('/boom', () => {
      throw new Error(`database refused password=${SECRET}`);
    });
    app.get('/limited', limited as never, (_req, res) => {
      res.json({ ok: true });
    });
    app.get('/fail', (_req, res) => {
      res.status(500).json({ error: 'failed' });
    });
    app.get('/slow', async (_req, res) => {
      await new Promise((r) => setTimeout(r, 600));
      if (!res.headersSent) res.json({ late: true });
    });
    app.post('/upload', express.json(), (_req, res) => {
      res.json({ ok: true });
    });
    app.use((_error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(500).json({ error: 'internal' });
    });
    base = await serve(app);
  });

  it('Authorization, cookies, API keys and secret query values are censored on 500, 413, 429, 503 and 504', async () => {
    const headers = {
      authorization: `Bearer ${SECRET}`,
      cookie: `session=${SECRET}`,
      'x-api-key': SECRET,
      'proxy-authorization': `Basic ${Buffer.from(`u:${SECRET}`).toString('base64')}`,
    };
    const q = `token=${SECRET}&api_key=${SECRET}&password=${SECRET}&access_token=${SECRET}`;
    const statuses = [
      (await request(`${base}/boom?${q}`, { headers })).status,
      (
        await request(`${base}/upload?${q}`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: JSON.stringify({ password: SECRET, pad: 'x'.repeat(2000) }),
        })
      ).status,
      (await request(`${base}/limited?${q}`, { headers })).status,
      (await request(`${base}/limited?${q}`, { headers })).status,
    ];
    // failures until the breaker opens (its threshold counts within its window), then 503
    let failStatus = 0;
    for (let i = 0; i < 20 && failStatus !== 503; i++) {
      failStatus = (await request(`${base}/fail?${q}`, { headers })).status;
      statuses.push(failStatus);
    }
    statuses.push((await request(`${base}/slow?${q}`, { headers })).status);
    expect(statuses.slice(0, 4)).toEqual([500, 413, 200, 429]);
    expect(statuses.slice(4, -2).every((s) => s === 500)).toBe(true);
    expect(statuses.slice(-2)).toEqual([503, 504]);
    await new Promise((r) => setTimeout(r, 700)); // the late /slow answer and its log line
    expect(lines.length).toBeGreaterThanOrEqual(statuses.length);
    const all = [...lines, ...problems].join('\n');
    expect(all).not.toContain(SECRET);
    expect(all).not.toContain(Buffer.from(`u:${SECRET}`).toString('base64'));
    // the lines are there, just censored: the statuses were logged
    for (const status of [500, 413, 429, 503, 504]) expect(all).toContain(`${status}`);
  });
});

describe('the cache never serves one user’s response to another', () => {
  let base: string;
  let calls = 0;
  beforeAll(async () => {
    const stack = fullStack({ rateLimit: { limit: 100_000, window: '1m' } });
    const app = appWith(stack, (a) => {
      const who = (req: express.Request) =>
        String(req.headers.authorization ?? req.headers.cookie ?? req.headers['x-user'] ?? 'anonymous');
      a.get('/me', cache({ ttl: '1m' }), (req, res) => {
        calls++;
        res.json({ user: who(req) });
      });
      a.get('/login', cache({ ttl: '1m' }), (req, res) => {
        res.setHeader('set-cookie', `session=${who(req)}-session; HttpOnly`);
        res.json({ user: who(req) });
      });
      a.get('/vary', cache({ ttl: '1m', private: false }), (req, res) => {
        res.setHeader('vary', 'X-User, Authorization');
        res.json({ user: who(req) });
      });
      a.get('/public', cache({ ttl: '1m' }), (req, res) => {
        res.setHeader('cache-control', 'public, max-age=60');
        res.setHeader('vary', 'Authorization');
        res.json({ user: who(req) });
      });
    });
    base = await serve(app);
  });

  it('Authorization and Cookie requests are answered by the origin, each with its own answer', async () => {
    const before = calls;
    for (let round = 0; round < 2; round++) {
      const users: Record<string, string>[] = [
        { authorization: 'Bearer alice' },
        { authorization: 'Bearer bob' },
        { cookie: 's=carol' },
        { cookie: 's=dave' },
      ];
      for (const headers of users) {
        const res = await request(`${base}/me`, { headers });
        expect(res.status).toBe(200);
        expect(res.json()).toEqual({ user: Object.values(headers)[0] });
        expect(res.headers['x-cache']).not.toBe('HIT');
      }
    }
    expect(calls - before).toBe(8); // every one of them reached the origin
    // and nobody else ever gets what they were given
    const anon = await request(`${base}/me`);
    expect(anon.json()).toEqual({ user: 'anonymous' });
  });

  it('a response that sets a cookie never hands that cookie to the next client', async () => {
    const first = await request(`${base}/login`, { headers: { 'x-user': 'erin' } });
    expect(first.headers['set-cookie']).toEqual(['session=erin-session; HttpOnly']);
    for (const user of ['frank', 'grace']) {
      const next = await request(`${base}/login`, { headers: { 'x-user': user } });
      expect(next.headers['set-cookie'] ?? []).not.toContain('session=erin-session; HttpOnly');
      if (next.headers['x-cache'] !== 'HIT') expect(next.json()).toEqual({ user });
    }
  });

  it('Vary: each combination of varying headers gets its own entry (property over random users)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({ user: fc.constantFrom('u1', 'u2', 'u3', ''), auth: fc.constantFrom('', 'Bearer a', 'Bearer b') }),
          { minLength: 1, maxLength: 8 },
        ),
        fc.nat(1_000_000),
        async (sequence, salt) => {
          for (const { user, auth } of sequence) {
            const headers: Record<string, string> = {};
            if (user) headers['x-user'] = user;
            if (auth) headers.authorization = auth;
            const res = await request(`${base}/vary?s=${salt}`, { headers });
            expect(res.status).toBe(200);
            expect(res.json()).toEqual({ user: auth || user || 'anonymous' });
          }
          for (const path of ['/public']) {
            for (const auth of ['Bearer a', 'Bearer b', '']) {
              const res = await request(`${base}${path}?s=${salt}`, auth ? { headers: { authorization: auth } } : {});
              expect(res.json()).toEqual({ user: auth || 'anonymous' });
            }
          }
        },
      ),
      { numRuns: 25 },
    );
  });
});

describe('rate-limit keys cannot be spoofed through headers from untrusted peers', () => {
  const ROTATING = (i: number) => ({
    'x-forwarded-for': `203.0.113.${i}`,
    forwarded: `for=198.51.100.${i}`,
    'x-real-ip': `192.0.2.${i}`,
    'cf-connecting-ip': `192.0.2.${100 + i}`,
    'true-client-ip': `192.0.2.${200 + i}`,
  });

  it('default (no trusted proxy): a loopback client rotating forwarding headers is still one client', async () => {
    const stack = fullStack({ rateLimit: { limit: 3, window: '1m', validate: false } });
    const base = await serve(appWith(stack, (a) => a.get('/x', (_req, res) => res.json({ ok: true }))));
    const statuses: number[] = [];
    for (let i = 1; i <= 5; i++) statuses.push((await request(`${base}/x`, { headers: ROTATING(i) })).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });

  it('trustProxy: loopback — a trusted local proxy may name clients, a remote peer may not', async () => {
    const stack = fullStack({ rateLimit: { limit: 3, window: '1m', trustProxy: 'loopback', validate: false } });
    const app = appWith(stack, (a) => a.get('/x', (_req, res) => res.json({ ok: true })));
    const local = await serve(app);
    const far = await serve(app, remote.serverAddress);
    const viaProxy: number[] = [];
    for (let i = 1; i <= 5; i++) viaProxy.push((await request(`${local}/x`, { headers: ROTATING(i) })).status);
    expect(viaProxy).toEqual([200, 200, 200, 200, 200]); // five different clients behind the proxy
    const results = await remote.send(
      Array.from({ length: 5 }, (_, i) => ({ url: `${far}/x`, headers: ROTATING(i + 50) })),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 429, 429]);
  });
});
