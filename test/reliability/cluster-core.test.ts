/**
 * Redis Cluster through core's own connection: `performanceStack({ redis: { rootNodes } })`
 * on a real three-node cluster (started by the test). Three app instances share exact rate
 * limits and see each other's cache invalidations, with no test-only subclass.
 */
import { createSharedRedis, silentLogger } from '@perfstack/core';
import express from 'express';
import { cache, type PerformanceStack, performanceStack } from 'perfstack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request as direct, listen, type TestServer, waitFor } from '../helpers/http.js';

import { uniquePrefix } from '../helpers/redis.js';
import { hasClusterTools, type RedisCluster, startRedisCluster } from './cluster.js';

/** The instances sit behind one load balancer: requests carry the public Host (part of the cache key). */
const request: typeof direct = (url, options = {}) =>
  direct(url, { ...options, headers: { host: 'shop.example', ...options.headers } });

const required = hasClusterTools() || process.env.CI === 'true';
let cluster: RedisCluster | undefined;
const instances: Array<{ stack: PerformanceStack; server: TestServer }> = [];

beforeAll(async () => {
  if (required) cluster = await startRedisCluster();
}, 60_000);

afterAll(async () => {
  for (const { stack, server } of instances) {
    await server.close();
    await stack.close();
  }
  await cluster?.stop();
});

describe.runIf(required)('Redis Cluster through createSharedRedis({ rootNodes })', () => {
  it('connects, reports up, and runs hash-tagged commands', async () => {
    const redis = createSharedRedis({ rootNodes: (cluster as RedisCluster).urls, logger: silentLogger });
    try {
      await waitFor(() => redis.isUp, 10_000);
      expect(redis.isCluster).toBe(true);
      expect(redis.health().status).toBe('up');
      await redis.run((c) => c.set('{perfstack-test}:a', '1'));
      expect(await redis.run((c) => c.get('{perfstack-test}:a'))).toBe('1');
      await redis.run((c) => c.del('{perfstack-test}:a'));
    } finally {
      await redis.close();
    }
  });

  it('three instances share one limit exactly and one invalidation stream', async () => {
    const keyPrefix = uniquePrefix('cluster');
    let originCalls = 0;
    for (let i = 0; i < 3; i++) {
      const stack = performanceStack({
        env: false,
        log: silentLogger,
        logger: false,
        redis: { rootNodes: (cluster as RedisCluster).urls, keyPrefix, logger: silentLogger },
        rateLimit: { limit: 7, window: '1m', skip: (req) => (req.url ?? '').startsWith('/products') },
      });
      const app = express();
      app.use(stack);
      app.get('/ping', (_req, res) => {
        res.end('pong');
      });
      app.get('/products', cache({ ttl: '1m', tags: ['products'] }), (_req, res) => {
        originCalls++;
        res.json({ originCalls });
      });
      instances.push({ stack, server: await listen(app) });
    }
    await waitFor(() => instances.every(({ stack }) => stack.redis?.isUp === true), 10_000);
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      statuses.push((await request(`${(instances[i % 3] as { server: TestServer }).server.url}/ping`)).status);
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(7);
    expect(statuses.filter((s) => s === 429)).toHaveLength(5);

    const [a, b, c] = instances as [(typeof instances)[0], (typeof instances)[0], (typeof instances)[0]];
    expect((await request(`${a.server.url}/products`)).headers['x-cache']).toBe('MISS');
    await new Promise((r) => setTimeout(r, 300));
    expect((await request(`${b.server.url}/products`)).headers['x-cache']).toBe('HIT');
    expect((await request(`${c.server.url}/products`)).headers['x-cache']).toBe('HIT');
    expect(originCalls).toBe(1);
    const removed = await a.stack.cache.invalidate({ tags: ['products'] });
    expect(removed).toBeGreaterThan(0);
    await waitFor(async () => (await request(`${b.server.url}/products`)).headers['x-cache'] === 'MISS', 3000);
    // C dropped its copy too: what it serves now is the fresh entry B just stored, never the old one
    await waitFor(
      async () => (await request(`${c.server.url}/products`)).json<{ originCalls: number }>().originCalls === 2,
      3000,
    );
    expect(originCalls).toBe(2);
  }, 60_000);
});
