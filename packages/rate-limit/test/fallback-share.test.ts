/**
 * The local fallback keeps the fleet's promise (issue 16), on a private redis-server paused
 * with SIGSTOP: three instances (three connections that joined the fleet) each admit
 * `ceil(limit / liveInstances)` while Redis is unreachable (`fallbackLimit: 'share'`), or the
 * whole limit (`'full'`); a client Redis refused stays refused through the stall; after it,
 * a client that used its local share gets no fresh quota, and others are counted in Redis.
 */
import { createRegistry, createSharedRedis, type SharedRedis, silentLogger } from '@perfstack/core';
import { type RateLimiter, type RateLimitOptions, rateLimit } from '@perfstack/rate-limit';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';
import { type RedisServerHandle, startRedisServer, uniquePrefix } from '../../../test/helpers/redis.js';

let server: RedisServerHandle;
const closers: Array<() => Promise<void>> = [];

beforeAll(async () => {
  server = await startRedisServer();
});
afterAll(async () => {
  server.resume();
  for (const close of closers.splice(0).reverse()) await close();
  await server.stop();
});

async function fleet(prefix: string, options: RateLimitOptions) {
  const instances: Array<{ redis: SharedRedis; limiter: RateLimiter; http: TestServer }> = [];
  for (let i = 0; i < 3; i++) {
    const redis = createSharedRedis({
      url: server.url,
      keyPrefix: prefix,
      commandTimeout: 200,
      heartbeatInterval: 100,
      instanceId: `i${i}`,
      logger: silentLogger,
    });
    await redis.connect();
    const limiter = rateLimit({
      redis,
      registry: createRegistry(),
      logger: silentLogger,
      window: '1m',
      keyGenerator: (req) => String(req.headers['x-client']),
      ...options,
    });
    const app = express();
    app.use(limiter);
    app.use((_req, res) => {
      res.send('ok');
    });
    const http = await listen(app as never);
    closers.push(
      () => redis.close(),
      () => limiter.close(),
      () => http.close(),
    );
    instances.push({ redis, limiter, http });
  }
  // With the share, the limiters joined the fleet: every instance has counted three.
  if (options.fallbackLimit !== 'full') await waitFor(() => instances.every((i) => i.redis.liveInstances === 3), 5000);
  else expect(instances.every((i) => i.redis.liveInstances === 1)).toBe(true);
  return instances;
}

const send = async (url: string, client: string, count: number) => {
  const statuses: number[] = [];
  for (let i = 0; i < count; i++) statuses.push((await request(url, { headers: { 'x-client': client } })).status);
  return statuses.filter((s) => s === 200).length;
};

describe('local fallback during a Redis stall', () => {
  it("'share' (default): each instance admits ceil(limit / 3); refusals stay; no fresh quota after", async () => {
    const instances = await fleet(uniquePrefix('share'), { limit: 10 });
    const urls = instances.map((i) => i.http.url);
    // Before the stall: "blocked" uses its whole limit in Redis and is refused once.
    expect(await send(urls[0] as string, 'blocked', 11)).toBe(10);
    // "early" used 2 in Redis.
    expect(await send(urls[1] as string, 'early', 2)).toBe(2);
    server.pause();
    try {
      await waitFor(() => instances.every((i) => i.redis.status === 'down'), 5000);
      // ceil(10 / 3) = 4 per instance and client: 12 for the fleet (bound: 10 + 3 × 4 = 22).
      for (const url of urls) expect(await send(url, 'fresh', 6)).toBe(4);
      // The instance that saw Redis refuse "blocked" keeps refusing it.
      expect(await send(urls[0] as string, 'blocked', 3)).toBe(0);
      expect(instances[0]?.limiter.health()).toMatchObject({ status: 'degraded', liveInstances: 3 });
    } finally {
      server.resume();
    }
    await waitFor(() => instances.every((i) => i.redis.isUp && i.limiter.health().status === 'ok'), 5000);
    // "fresh" spent its local share during the stall: still refused there until the window ends.
    expect(await send(urls[0] as string, 'fresh', 2)).toBe(0);
    // A client the stall did not touch is counted in Redis again: exactly 10 across the fleet.
    let admitted = 0;
    for (let i = 0; i < 15; i++) admitted += await send(urls[i % 3] as string, 'after', 1);
    expect(admitted).toBe(10);
  }, 30_000);

  it("'full': each instance admits the whole limit while Redis is unreachable", async () => {
    const instances = await fleet(uniquePrefix('full'), { limit: 5, fallbackLimit: 'full' });
    server.pause();
    try {
      await waitFor(() => instances.every((i) => i.redis.status === 'down'), 5000);
      expect(await send(instances[0]?.http.url as string, 'c', 7)).toBe(5);
      expect(await send(instances[1]?.http.url as string, 'c', 7)).toBe(5);
    } finally {
      server.resume();
    }
  }, 30_000);
});
