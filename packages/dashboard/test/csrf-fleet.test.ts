/**
 * The CSRF token across a fleet: a page served by one instance works on another, either
 * through a shared `csrfSecret` or through a token the instances agree on in a real Redis.
 * A Redis that is unreachable or paused never fails or holds up a page load or an action.
 */
import { createHmac } from 'node:crypto';
import http from 'node:http';
import { createSharedRedis, type SharedRedis } from '@perfstack/core';
import { type DashboardOptions, dashboard } from '@perfstack/dashboard';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listen, request, waitFor } from '../../../test/helpers/http.js';
import {
  cleanPrefix,
  freePort,
  type RedisServerHandle,
  redisUrl,
  startRedisServer,
  uniquePrefix,
} from '../../../test/helpers/redis.js';
import { buildApp } from './app.js';
import { memoryLogger } from './fakes.js';

const P = '@perfstack/dashboard';
const SECRET = 'k'.repeat(16) + 'fleet-secret-0123';
/** Each request in this file gives up after this long: a hang fails the test instead of stalling it. */
const NO_HANG = { timeout: 2000 };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const tokenOf = (html: string) => /<meta name="csrf-token" content="([^"]+)">/.exec(html)?.[1] ?? '';

/** One dashboard instance on its own server (the test app: Express, helmet's CSP, fake layers). */
async function instance(options: Omit<DashboardOptions, 'sources'> = {}) {
  const logger = memoryLogger();
  const built = buildApp({ logger, leakWatch: false, ...options });
  const server = await listen(http.createServer(built.app));
  cleanups.push(async () => {
    // close() must finish even with a Redis that never connected (the fleet view's
    // subscription is still pending then).
    await built.board.close();
    await server.close();
  });
  const host = server.url.slice('http://'.length);
  return {
    ...built,
    logger,
    server,
    /** Loads the page and returns the token in its meta tag. */
    pageToken: async () => {
      const page = await request(`${server.url}/dashboard/`, NO_HANG);
      expect(page.status).toBe(200);
      return tokenOf(page.text);
    },
    /** A rate-limit reset as the page's script sends it (behind a load balancer the origin is the balancer's). */
    reset: (token: string, key: string) =>
      request(`${server.url}/dashboard/api/rate-limit/reset`, {
        ...NO_HANG,
        method: 'POST',
        headers: {
          Host: host,
          Origin: server.url,
          'Sec-Fetch-Site': 'same-origin',
          'Content-Type': 'application/json',
          'X-CSRF-Token': token,
        },
        body: JSON.stringify({ key }),
      }),
  };
}

/** A shared connection under its own prefix, closed (and its keys deleted) after the test. */
async function sharedRedis(url: string, keyPrefix: string): Promise<SharedRedis> {
  const redis = createSharedRedis({ url, keyPrefix, logger: memoryLogger(), maxReconnectDelay: 100 });
  cleanups.push(() => redis.close());
  return redis;
}

const invalidToken = {
  type: 'urn:perfstack:problem:forbidden',
  title: 'Forbidden',
  status: 403,
  detail: 'The X-CSRF-Token header is not valid.',
  code: 'FORBIDDEN',
  reason: 'csrf',
};

describe('csrfSecret: one token for every instance sharing the secret', () => {
  it("a token from A's page is accepted by B; a wrong one is refused", async () => {
    const a = await instance({ instanceId: 'web-1', csrfSecret: SECRET });
    const b = await instance({ instanceId: 'web-2', csrfSecret: SECRET });
    const token = await a.pageToken();
    expect(token).toBe(createHmac('sha256', SECRET).update('perfstack-dashboard-csrf-v1').digest('base64url'));
    expect(await b.pageToken()).toBe(token);

    const onB = await b.reset(token, '203.0.113.7');
    expect(onB.status).toBe(200);
    expect(onB.headers['cache-control']).toBe('no-store');
    expect(onB.json()).toEqual({ ok: true, key: '203.0.113.7' });
    expect(b.sources.rateLimit.resets).toEqual(['203.0.113.7']);
    expect(a.sources.rateLimit.resets).toEqual([]);

    const wrong = await b.reset('A'.repeat(43), 'k');
    expect(wrong.status).toBe(403);
    expect(wrong.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(wrong.json()).toEqual(invalidToken);
    expect(b.sources.rateLimit.resets).toEqual(['203.0.113.7']);
  });

  it('an instance with another secret refuses the token', async () => {
    const a = await instance({ csrfSecret: SECRET });
    const other = await instance({ csrfSecret: 'x'.repeat(32) });
    const res = await other.reset(await a.pageToken(), 'k');
    expect(res.status).toBe(403);
    expect(res.json()).toEqual(invalidToken);
    expect(other.sources.rateLimit.resets).toEqual([]);
  });

  it('with a secret, Redis is not used for the token', async () => {
    const url = await redisUrl();
    const prefix = uniquePrefix('csrf');
    cleanups.push(() => cleanPrefix(url, prefix));
    const redis = await sharedRedis(url, prefix);
    await redis.connect();
    const a = await instance({ csrfSecret: SECRET, redis });
    const token = await a.pageToken();
    expect((await a.reset(token, 'k')).status).toBe(200);
    expect(await redis.run((c) => c.exists(`${prefix}dashboard:csrf`))).toBe(0);
  });

  it.each<[string, unknown, string]>([
    ['a short string', 'tooShortSecret', 'a string of 14 characters'],
    ['31 characters', 's'.repeat(31), 'a string of 31 characters'],
    ['an empty string', '', 'a string of 0 characters'],
    ['a number', 42, 'a number'],
    ['null', null, 'null'],
    ['an object', { secret: SECRET }, 'an object'],
  ])('refuses %s as csrfSecret, without echoing it', (_name, value, got) => {
    let thrown: unknown;
    try {
      dashboard({ csrfSecret: value as string });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(TypeError);
    expect((thrown as TypeError).message).toBe(
      `${P}: option "csrfSecret" must be a string of at least 32 characters shared by every instance ` +
        `(e.g. randomBytes(32).toString('hex')), got ${got}`,
    );
    if (typeof value === 'string' && value.length > 0) expect((thrown as TypeError).message).not.toContain(value);
  });

  it('accepts a secret of exactly 32 characters', async () => {
    const board = dashboard({ csrfSecret: 's'.repeat(32), leakWatch: false });
    await board.close();
  });
});

describe('no secret, a shared Redis: the instances agree on one token', () => {
  it("after both started, A's page token works on B and B's on A", async () => {
    const url = await redisUrl();
    const prefix = uniquePrefix('csrf');
    cleanups.push(() => cleanPrefix(url, prefix));
    const redisA = await sharedRedis(url, prefix);
    const redisB = await sharedRedis(url, prefix);
    await Promise.all([redisA.connect(), redisB.connect()]);
    const a = await instance({ instanceId: 'web-1', redis: redisA });
    const b = await instance({ instanceId: 'web-2', redis: redisB });

    let tokenA = '';
    let tokenB = '';
    const agreed = async () => {
      [tokenA, tokenB] = await Promise.all([a.pageToken(), b.pageToken()]);
      return tokenA === tokenB;
    };
    await waitFor(agreed);
    expect(tokenA).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(await redisA.run((c) => c.get(`${prefix}dashboard:csrf`))).toBe(tokenA);

    const onB = await b.reset(tokenA, 'from-a');
    expect(onB.status).toBe(200);
    expect(onB.json()).toEqual({ ok: true, key: 'from-a' });
    const onA = await a.reset(tokenB, 'from-b');
    expect(onA.status).toBe(200);
    expect(onA.json()).toEqual({ ok: true, key: 'from-b' });
    expect(b.sources.rateLimit.resets).toEqual(['from-a']);
    expect(a.sources.rateLimit.resets).toEqual(['from-b']);

    const wrong = await a.reset('A'.repeat(43), 'k');
    expect(wrong.status).toBe(403);
    expect(wrong.json()).toEqual(invalidToken);
  });

  it('instances on another key prefix are another fleet', async () => {
    const url = await redisUrl();
    const prefix = uniquePrefix('csrf');
    const otherPrefix = uniquePrefix('csrf');
    cleanups.push(() => cleanPrefix(url, prefix));
    cleanups.push(() => cleanPrefix(url, otherPrefix));
    const redisA = await sharedRedis(url, prefix);
    const redisO = await sharedRedis(url, otherPrefix);
    await Promise.all([redisA.connect(), redisO.connect()]);
    const a = await instance({ redis: redisA });
    const other = await instance({ redis: redisO });
    const key = (p: string) => `${p}dashboard:csrf`;
    await waitFor(async () => (await redisO.run((c) => c.get(key(otherPrefix)))) === (await other.pageToken()));
    await waitFor(async () => (await redisA.run((c) => c.get(key(prefix)))) === (await a.pageToken()));
    const res = await other.reset(await a.pageToken(), 'k');
    expect(res.status).toBe(403);
    expect(res.json()).toEqual(invalidToken);
  });

  it('a value in the key that is not a token is not adopted; logged once', async () => {
    const url = await redisUrl();
    const prefix = uniquePrefix('csrf');
    cleanups.push(() => cleanPrefix(url, prefix));
    const redis = await sharedRedis(url, prefix);
    await redis.connect();
    await redis.run((c) => c.set(`${prefix}dashboard:csrf`, '"><script>alert(1)</script>'));
    const a = await instance({ redis });
    const warned = () =>
      a.logger.lines.filter((l) => l.message.startsWith('DASHBOARD_CSRF_VALUE: the Redis key ')).length;
    await waitFor(async () => {
      await a.pageToken();
      return warned() === 1;
    });
    const page = await request(`${a.server.url}/dashboard/`, NO_HANG);
    expect(page.text).not.toContain('<script>alert');
    const token = tokenOf(page.text);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (let i = 0; i < 3; i++) expect(await a.pageToken()).toBe(token);
    expect((await a.reset(token, 'k')).status).toBe(200);
    expect(warned()).toBe(1);
  });
});

describe('a Redis that is down or slow never fails or holds up the page or an action', () => {
  let server: RedisServerHandle;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('Redis configured but unreachable: the page and actions work with the local token', {
    timeout: 10_000,
  }, async () => {
    const port = await freePort();
    const redis = createSharedRedis({
      url: `redis://127.0.0.1:${port}`,
      keyPrefix: uniquePrefix('csrf'),
      logger: memoryLogger(),
      maxReconnectDelay: 100,
    });
    cleanups.push(() => redis.close());
    const a = await instance({ redis });
    const token = await a.pageToken();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const res = await a.reset(token, 'k1');
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ ok: true, key: 'k1' });
    expect(await a.pageToken()).toBe(token);
    expect((await a.reset(token, 'k2')).status).toBe(200);
    const wrong = await a.reset('A'.repeat(43), 'k3');
    expect(wrong.status).toBe(403);
    expect(wrong.json()).toEqual(invalidToken);
    expect(a.sources.rateLimit.resets).toEqual(['k1', 'k2']);
    expect(redis.isUp).toBe(false);
  });

  it('a page served before the agreement still works after it; new pages carry the fleet token', {
    timeout: 15_000,
  }, async () => {
    const prefix = uniquePrefix('csrf');
    const redisA = await sharedRedis(server.url, prefix);
    await redisA.connect();
    const a = await instance({ instanceId: 'web-1', redis: redisA });
    let fleetToken = '';
    await waitFor(async () => {
      fleetToken = await a.pageToken();
      return (await redisA.run((c) => c.get(`${prefix}dashboard:csrf`))) === fleetToken;
    });

    // Redis stops answering (SIGSTOP) before C's connection is ready: C serves its own token, at once.
    server.pause();
    try {
      const redisC = await sharedRedis(server.url, prefix);
      const c = await instance({ instanceId: 'web-3', redis: redisC });
      const early = await c.pageToken();
      expect(early).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(early).not.toBe(fleetToken);
      expect((await c.reset(early, 'early')).status).toBe(200);
      expect(redisC.isUp).toBe(false);

      server.resume();
      await waitFor(async () => (await c.pageToken()) === fleetToken);
      // C accepts the page it served before, and the fleet's; A knows only the fleet's.
      const before = await c.reset(early, 'before');
      expect(before.status).toBe(200);
      expect(before.json()).toEqual({ ok: true, key: 'before' });
      expect((await c.reset(fleetToken, 'fleet')).status).toBe(200);
      expect(c.sources.rateLimit.resets).toEqual(['early', 'before', 'fleet']);
      expect((await a.reset(await c.pageToken(), 'from-c')).status).toBe(200);
      const stale = await a.reset(early, 'stale');
      expect(stale.status).toBe(403);
      expect(stale.json()).toEqual(invalidToken);
    } finally {
      server.resume();
      await cleanPrefix(server.url, prefix);
    }
  });

  it('after a Redis restart that lost the key, the instances write the same token back', {
    timeout: 15_000,
  }, async () => {
    const prefix = uniquePrefix('csrf');
    const redisA = await sharedRedis(server.url, prefix);
    const redisB = await sharedRedis(server.url, prefix);
    await Promise.all([redisA.connect(), redisB.connect()]);
    const a = await instance({ instanceId: 'web-1', redis: redisA });
    const b = await instance({ instanceId: 'web-2', redis: redisB });
    let token = '';
    await waitFor(async () => {
      token = await a.pageToken();
      return (await b.pageToken()) === token;
    });

    await server.stop();
    await server.start();
    const key = `${prefix}dashboard:csrf`;
    await waitFor(async () => redisA.isUp && (await redisA.run((c) => c.get(key))) === token);
    // A new instance joining now gets the same token, and its page works on the old ones.
    const redisC = await sharedRedis(server.url, prefix);
    await redisC.connect();
    const c = await instance({ instanceId: 'web-3', redis: redisC });
    await waitFor(async () => (await c.pageToken()) === token);
    expect((await b.reset(await c.pageToken(), 'from-c')).status).toBe(200);
    await cleanPrefix(server.url, prefix);
  });
});
