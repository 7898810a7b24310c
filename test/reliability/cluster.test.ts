/**
 * Scale-out on a local three-node Redis Cluster started by the test (`redis-server
 * --cluster-enabled yes` ×3 and `redis-cli --cluster create`).
 *
 * Core's `createSharedRedis` takes a node-redis cluster client (`{ client }`) or makes one
 * (`{ rootNodes }`, see cluster-core.test.ts); the rate limiter's hash-tagged script, the
 * cache's L2 and invalidation work unchanged on the cluster, across three app instances.
 */

import { createSharedRedis, silentLogger } from '@perfstack/core';
import express from 'express';
import { cache, type PerformanceStack, performanceStack } from 'perfstack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @keyv/redis is core's dependency (not the test package's): reach it through core.
import { createCluster } from '../../packages/core/node_modules/@keyv/redis/dist/index.js';
import { request as direct, listen, type TestServer, waitFor } from '../helpers/http.js';

import { hasClusterTools, type RedisCluster, startRedisCluster } from './cluster.js';

/** The instances sit behind one load balancer: requests carry the public Host (part of the cache key). */
const request: typeof direct = (url, options = {}) =>
  direct(url, { ...options, headers: { host: 'shop.example', ...options.headers } });

type Cluster = ReturnType<typeof createCluster>;

const logged: string[] = [];
const quiet = { warn: (m: string) => logged.push(m), error: (m: string) => logged.push(m) };
let cluster: RedisCluster | undefined;
const clients: Cluster[] = [];
const instances: { stack: PerformanceStack; server: TestServer }[] = [];

async function clusterClient(): Promise<Cluster> {
  const client = createCluster({
    rootNodes: (cluster as RedisCluster).urls.map((url) => ({ url })),
    defaults: { disableOfflineQueue: true },
  });
  client.on('error', () => {});
  await client.connect();
  clients.push(client as unknown as Cluster);
  return client as unknown as Cluster;
}

async function instance(prefix: string, burst = 5): Promise<{ stack: PerformanceStack; server: TestServer }> {
  const client = await clusterClient();
  const redis = createSharedRedis({
    client: client as never,
    keyPrefix: prefix,
    commandTimeout: 1000,
    logger: silentLogger,
  });
  const stack = performanceStack({
    env: false,
    log: quiet,
    redis,
    logger: { destination: { write() {} } as never },
    rateLimit: {
      limits: [
        { name: 'burst', limit: burst, window: '1m' },
        { name: 'hourly', limit: 1000, window: '1h', algorithm: 'sliding-window' },
      ],
    },
  });
  const app = express();
  app.use(stack);
  app.get('/x', (_req, res) => {
    res.json({ ok: true });
  });
  app.get('/products', cache({ ttl: '1m', tags: ['products'] }), (_req, res) => {
    res.json({ at: Date.now() });
  });
  app.get('/items/:id', cache({ ttl: '1m', tags: ['items', 'catalog'] }), (req, res) => {
    res.json({ id: req.params.id, at: Date.now() });
  });
  app.post('/items', async (_req, res) => {
    await stack.cache.invalidate({ prefix: '/items/' });
    res.status(204).end();
  });
  app.post('/products', async (_req, res) => {
    await stack.cache.invalidate({ tags: ['products'] });
    res.status(204).end();
  });
  const server = await listen(app);
  const made = { stack, server };
  instances.push(made);
  return made;
}

const skip = !hasClusterTools();

describe.skipIf(skip)('Redis Cluster (three nodes, no replicas)', () => {
  beforeAll(async () => {
    cluster = await startRedisCluster();
  }, 60_000);

  afterAll(async () => {
    for (const i of instances) {
      await i.server.close();
      await i.stack.close();
    }
    for (const c of clients) await c.close().catch(() => c.destroy());
    await cluster?.stop();
  });

  it('core takes a cluster client as it is: createSharedRedis({ client: cluster }) comes up', async () => {
    const client = await clusterClient();
    const shared = createSharedRedis({ client: client as never, logger: silentLogger });
    try {
      await waitFor(() => shared.isUp, 2000);
    } finally {
      await shared.close();
    }
  });

  it('three instances share exact limits (two limits per call, hash-tagged into one slot)', async () => {
    const prefix = `rel-cluster-${Date.now()}:`;
    const nodes = [await instance(prefix), await instance(prefix), await instance(prefix)];
    const statuses: number[] = [];
    for (let i = 0; i < 9; i++) statuses.push((await request(`${nodes[i % 3]?.server.url}/x`)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429, 429]);
    // decided by Redis, not by a local fallback: no instance fell back
    for (const n of nodes) {
      expect(n.stack.layers.rateLimit?.stats()).toMatchObject({ store: 'redis', fallback: 0 });
    }
    // the keys of one client live in one slot
    const client = clients[0] as Cluster;
    const keys: string[] = [];
    for (const master of client.masters) {
      const node = await client.nodeClient(master);
      keys.push(...(await node.keys(`${prefix}*`)));
    }
    expect(keys.length).toBe(2);
    const slots = await Promise.all(keys.map((k) => client.sendCommand(k, true, ['CLUSTER', 'KEYSLOT', k])));
    expect(new Set(slots).size).toBe(1);
  });

  it('three instances share the cache (L2) and a tag invalidation on one reaches the others', async () => {
    const prefix = `rel-cluster-cache-${Date.now()}:`;
    const [a, b, c] = [await instance(prefix), await instance(prefix), await instance(prefix)];
    // each instance's invalidation subscriber connects to the cluster in the background
    await new Promise((r) => setTimeout(r, 1500));
    const first = await request(`${a?.server.url}/products`);
    expect(first.headers['x-cache']).toBe('MISS');
    await new Promise((r) => setTimeout(r, 300)); // the L2 write and its "stored" event
    // B and C never produced /products: they answer A's very response from L2
    for (const other of [b, c]) {
      const res = await request(`${other?.server.url}/products`);
      expect(res.headers['x-cache']).toBe('HIT');
      expect(res.json()).toEqual(first.json());
    }
    expect((await request(`${a?.server.url}/products`, { method: 'POST' })).status).toBe(204);
    await new Promise((r) => setTimeout(r, 300)); // the invalidation event
    // B's copy is gone (memory and L2): it asks the origin again and shares the new answer
    const fresh = await request(`${b?.server.url}/products`);
    expect(fresh.headers['x-cache']).toBe('MISS');
    expect(fresh.json()).not.toEqual(first.json());
    await new Promise((r) => setTimeout(r, 300));
    for (const other of [a, c]) {
      const res = await request(`${other?.server.url}/products`);
      expect(res.headers['x-cache']).toBe('HIT');
      expect(res.json()).toEqual(fresh.json());
    }
    expect(logged).toEqual([]);
  });

  it('multi-tag routes and prefix invalidation reach every node', async () => {
    // @perfstack/cache store/redis.ts on a cluster: one MULTI per tag set (tags hash to
    // different slots), one DEL per key, and SCAN on every master.
    // more requests than the other tests' burst limit of 5: this one is about the cache
    const prefix = `rel-cluster-items-${Date.now()}:`;
    const [a, b] = [await instance(prefix, 100), await instance(prefix, 100)];
    await new Promise((r) => setTimeout(r, 1500));
    const ids = ['1', '2', '3', '4', '5', '6'];
    const firsts = [];
    for (const id of ids) {
      const res = await request(`${a?.server.url}/items/${id}`);
      expect(res.status).toBe(200);
      expect(res.headers['x-cache']).toBe('MISS');
      firsts.push(res.json());
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const [i, id] of ids.entries()) {
      const res = await request(`${b?.server.url}/items/${id}`);
      expect(res.status).toBe(200);
      expect(res.headers['x-cache']).toBe('HIT');
      expect(res.json()).toEqual(firsts[i]);
    }
    expect((await request(`${a?.server.url}/items`, { method: 'POST' })).status).toBe(204);
    await new Promise((r) => setTimeout(r, 300));
    const c = await instance(prefix, 100); // a new instance reads only L2: nothing may be left there
    await new Promise((r) => setTimeout(r, 1500));
    for (const [i, id] of ids.entries()) {
      const res = await request(`${c.server.url}/items/${id}`);
      expect(res.status).toBe(200);
      expect(res.headers['x-cache']).toBe('MISS');
      expect(res.json()).not.toEqual(firsts[i]);
    }
    expect(logged).toEqual([]);
  });
});
