import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { createRegistry } from '@perfstack/core';
import { dashboard, healthHandler, isLoopbackAddress, metricsHandler } from '@perfstack/dashboard';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { buildApp } from './app.js';

/** A local IPv4 address that is not loopback, if this machine has one (eth0 in CI). */
const externalAddress = Object.values(networkInterfaces())
  .flat()
  .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Serves `listener` on `host` (port 0). */
async function serve(listener: http.RequestListener, host = '127.0.0.1'): Promise<{ port: number }> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port };
}

async function startApp(options: Parameters<typeof buildApp>[0] = {}, host = '127.0.0.1') {
  const built = buildApp({ instanceId: 'a', ...options });
  cleanups.push(() => built.board.close());
  const { port } = await serve(built.app, host);
  return { ...built, port };
}

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('isLoopbackAddress', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.1.2.3', true],
    ['127.255.255.255', true],
    ['::1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['::0:1', true],
    ['::ffff:127.0.0.1', true],
    ['::FFFF:127.9.9.9', true],
    ['128.0.0.1', false],
    ['10.0.0.1', false],
    ['192.0.2.2', false],
    ['0.0.0.0', false],
    ['::', false],
    ['::2', false],
    ['1::1', false],
    ['::ffff:10.0.0.1', false],
    ['::ffff:7f00:1', false],
    ['127.0.0.1.evil', false],
    ['127.0.0.256', false],
    ['127.0.0', false],
    ['localhost', false],
    ['', false],
    [undefined, false],
  ])('%s → %s', (address, expected) => {
    expect(isLoopbackAddress(address)).toBe(expected);
  });
});

describe('default access: loopback clients only, judged on the socket', () => {
  it('lets a loopback client in', async () => {
    const { port } = await startApp();
    expect((await request(`http://127.0.0.1:${port}/dashboard/api/snapshot`)).status).toBe(200);
  });

  it.runIf(externalAddress !== undefined)(
    'refuses a non-loopback peer with 403, even with a spoofed X-Forwarded-For',
    async () => {
      const { port } = await startApp({}, '0.0.0.0');
      const base = `http://${externalAddress}:${port}`;
      for (const path of [
        '/dashboard/',
        '/dashboard/api/snapshot',
        '/dashboard/api/stream',
        '/dashboard/assets/app.js',
      ]) {
        const res = await request(`${base}${path}`, {
          localAddress: externalAddress,
          headers: {
            'X-Forwarded-For': '127.0.0.1',
            Forwarded: 'for=127.0.0.1',
            'X-Real-IP': '127.0.0.1',
          },
        });
        expect(res.status).toBe(403);
        expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.headers['www-authenticate']).toBeUndefined();
        expect(res.json()).toEqual({
          type: 'urn:perfstack:problem:forbidden',
          title: 'Forbidden',
          status: 403,
          detail: 'Only loopback clients may use this endpoint; configure auth to open it to others.',
          code: 'FORBIDDEN',
        });
      }
      // The same server still lets a loopback client in.
      expect((await request(`http://127.0.0.1:${port}/dashboard/api/snapshot`)).status).toBe(200);
    },
  );

  it.runIf(externalAddress !== undefined)('a trusting Express (trust proxy) does not change the decision', async () => {
    const { app, port } = await startApp({}, '0.0.0.0');
    app.set('trust proxy', true);
    const res = await request(`http://${externalAddress}:${port}/dashboard/api/snapshot`, {
      localAddress: externalAddress,
      headers: { 'X-Forwarded-For': '127.0.0.1' },
    });
    expect(res.status).toBe(403);
  });

  it.runIf(externalAddress !== undefined)(
    'with auth configured, a non-loopback peer with credentials gets in',
    async () => {
      const { port } = await startApp({ auth: { username: 'ops', password: 's3cret' } }, '0.0.0.0');
      const res = await request(`http://${externalAddress}:${port}/dashboard/api/snapshot`, {
        localAddress: externalAddress,
        headers: { Authorization: basic('ops', 's3cret') },
      });
      expect(res.status).toBe(200);
    },
  );
});

describe('basic auth', () => {
  it.each([
    ['no credentials', undefined, 'Credentials are required.'],
    ['a wrong password', basic('ops', 'nope'), 'The credentials are not valid.'],
    ['a wrong user', basic('root', 's3cret'), 'The credentials are not valid.'],
    ['no colon', `Basic ${Buffer.from('ops').toString('base64')}`, 'The credentials are not valid.'],
    ['another scheme', 'Bearer s3cret', 'Credentials are required.'],
  ])('%s → 401 with WWW-Authenticate, loopback included', async (_name, authorization, detail) => {
    const { port } = await startApp({ auth: { username: 'ops', password: 's3cret' } });
    const res = await request(`http://127.0.0.1:${port}/dashboard/api/snapshot`, {
      headers: authorization === undefined ? {} : { Authorization: authorization },
    });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Basic realm="perfstack", charset="UTF-8"');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({
      type: 'urn:perfstack:problem:unauthorized',
      title: 'Unauthorized',
      status: 401,
      detail,
      code: 'UNAUTHORIZED',
    });
  });

  it('the right credentials (scheme in any case, password with a colon) → 200', async () => {
    const { port } = await startApp({ auth: { username: 'ops', password: 'a:b:c' } });
    const res = await request(`http://127.0.0.1:${port}/dashboard/api/snapshot`, {
      headers: { Authorization: basic('ops', 'a:b:c').replace('Basic', 'bAsIc') },
    });
    expect(res.status).toBe(200);
  });
});

describe('bearer token', () => {
  it('missing or wrong → 401 Bearer challenge; right → 200', async () => {
    const { port } = await startApp({ auth: { token: 'tok-123' } });
    const url = `http://127.0.0.1:${port}/dashboard/api/snapshot`;
    const none = await request(url);
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="perfstack", error="invalid_token"');
    const wrong = await request(url, { headers: { Authorization: 'Bearer tok-124' } });
    expect(wrong.status).toBe(401);
    expect(wrong.json<{ detail: string }>().detail).toBe('The bearer token is not valid.');
    expect((await request(url, { headers: { Authorization: 'Bearer tok-123' } })).status).toBe(200);
  });
});

describe('predicate', () => {
  it('true → 200, false → 403, a throw or rejection → 403 logged once', async () => {
    const lines: string[] = [];
    let answer: () => boolean | Promise<boolean> = () => true;
    const { port } = await startApp({
      auth: (req) => (req.headers['x-ok'] === 'yes' ? answer() : false),
      logger: { warn: (m) => lines.push(m), error: (m) => lines.push(m) },
    });
    const url = `http://127.0.0.1:${port}/dashboard/api/snapshot`;
    expect((await request(url, { headers: { 'x-ok': 'yes' } })).status).toBe(200);
    const no = await request(url);
    expect(no.status).toBe(403);
    expect(no.headers['www-authenticate']).toBeUndefined();
    answer = () => {
      throw new Error('session store down');
    };
    expect((await request(url, { headers: { 'x-ok': 'yes' } })).status).toBe(403);
    answer = () => Promise.reject(new Error('again'));
    expect((await request(url, { headers: { 'x-ok': 'yes' } })).status).toBe(403);
    expect(lines).toEqual(['DASHBOARD_AUTH_PREDICATE: the auth predicate threw; access refused']);
  });
});

describe('/metrics and /health access', () => {
  it('loopback-only by default; auth and public: true as configured', async () => {
    const registry = createRegistry();
    const open = metricsHandler({ registry, public: true });
    const guarded = metricsHandler({ registry, auth: { token: 't' } });
    const health = healthHandler({ auth: { username: 'u', password: 'p' } });
    const { port } = await serve((req, res) => {
      if (req.url === '/open') open(req, res);
      else if (req.url === '/guarded') guarded(req, res);
      else health(req, res);
    });
    const base = `http://127.0.0.1:${port}`;
    expect((await request(`${base}/open`)).status).toBe(200);
    expect((await request(`${base}/guarded`)).status).toBe(401);
    expect((await request(`${base}/guarded`, { headers: { Authorization: 'Bearer t' } })).status).toBe(200);
    expect((await request(`${base}/health`)).status).toBe(401);
    expect((await request(`${base}/health`, { headers: { Authorization: basic('u', 'p') } })).status).toBe(200);
  });

  it.runIf(externalAddress !== undefined)(
    'default: a non-loopback peer gets 403 from /metrics and /health; public: true lets it in',
    async () => {
      const registry = createRegistry();
      const metrics = metricsHandler({ registry });
      const health = healthHandler();
      const publicHealth = healthHandler({ public: true });
      const { port } = await serve((req, res) => {
        if (req.url === '/metrics') metrics(req, res);
        else if (req.url === '/health') health(req, res);
        else publicHealth(req, res);
      }, '0.0.0.0');
      const base = `http://${externalAddress}:${port}`;
      const opts = { localAddress: externalAddress, headers: { 'X-Forwarded-For': '127.0.0.1' } };
      expect((await request(`${base}/metrics`, opts)).status).toBe(403);
      expect((await request(`${base}/health`, opts)).status).toBe(403);
      expect((await request(`${base}/public-health`, opts)).status).toBe(200);
      expect((await request(`http://127.0.0.1:${port}/metrics`)).status).toBe(200);
    },
  );
});

describe('dashboard() as a standalone listener', () => {
  it('auth applies before routing: an unknown path without credentials is 401, not 404', async () => {
    const board = dashboard({ instanceId: 'x', basePath: '/d', auth: { token: 'k' } });
    cleanups.push(() => board.close());
    const server: TestServer = await listen((req, res) => board(req, res, () => res.end()));
    cleanups.push(() => server.close());
    expect((await request(`${server.url}/d/nothing`)).status).toBe(401);
    expect((await request(`${server.url}/d/nothing`, { headers: { Authorization: 'Bearer k' } })).status).toBe(404);
  });
});
