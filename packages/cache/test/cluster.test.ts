/**
 * The L2 store on a local three-node Redis Cluster (started by the test with the
 * reliability suite's helper): tag sets in different slots, many-key deletes and prefix
 * scans must work on every node, with no CROSSSLOT error.
 *
 * Core's `SharedRedis.isUp` reads `client.isReady`, which a cluster client lacks, so the
 * test uses a subclass with `isUp` from `isOpen` (the change core is getting).
 */
import { RedisStore } from '@perfstack/cache';
import { SharedRedis, silentLogger } from '@perfstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @keyv/redis is core's dependency too: the same createCluster core would be given.
import { createCluster } from '../../../packages/core/node_modules/@keyv/redis/dist/index.js';
import { hasClusterTools, type RedisCluster, startRedisCluster } from '../../../test/reliability/cluster.js';
import { buildEntry } from '../src/entry.js';
import { isClusterClient } from '../src/store/redis.js';

type Cluster = ReturnType<typeof createCluster>;

class ClusterSharedRedis extends SharedRedis {
  override get isUp(): boolean {
    return this.status !== 'closed' && (this.client as unknown as Cluster).isOpen;
  }
}

function entry(body: string, tags: string[]) {
  return buildEntry({
    status: 200,
    headers: { 'content-type': 'text/plain' },
    body: Buffer.from(body),
    identityLength: body.length,
    encoding: undefined,
    storedAt: 0,
    expiresAt: 60_000,
    staleWhileRevalidate: 0,
    staleIfError: 0,
    initialAge: 0,
    shared: false,
    varyNames: [],
    varyValues: [],
    tags,
    route: '/t',
  });
}

let cluster: RedisCluster | undefined;
let client: Cluster;
let shared: ClusterSharedRedis;

describe.skipIf(!hasClusterTools())('RedisStore on a three-node Redis Cluster', () => {
  beforeAll(async () => {
    cluster = await startRedisCluster();
    client = createCluster({
      rootNodes: cluster.urls.map((url) => ({ url })),
      defaults: { disableOfflineQueue: true },
    }) as unknown as Cluster;
    client.on('error', () => {});
    await client.connect();
    shared = new ClusterSharedRedis(client as never, false, `cache-cluster-${Date.now()}:`, 1000, silentLogger);
  }, 60_000);

  afterAll(async () => {
    await shared?.close().catch(() => {});
    await client?.close().catch(() => client.destroy());
    await cluster?.stop();
  });

  /** Slots of these Redis keys (the cluster answers `CLUSTER KEYSLOT`). */
  async function slots(keys: string[]): Promise<Set<number>> {
    const out = await Promise.all(keys.map((k) => client.sendCommand(k, true, ['CLUSTER', 'KEYSLOT', k])));
    return new Set(out.map(Number));
  }

  /** Every key of this prefix on every master. */
  async function allKeys(pattern: string): Promise<string[]> {
    const keys: string[] = [];
    for (const master of client.masters) keys.push(...(await (await client.nodeClient(master)).keys(pattern)));
    return keys.sort();
  }

  it('is detected as a cluster client', () => {
    expect(isClusterClient(client)).toBe(true);
    expect(shared.isUp).toBe(true);
  });

  it('writeVariant() with tags in different slots, then takeTagged(), keysWithPrefix() and deleteKeys() over every node', async () => {
    const store = new RedisStore(shared, 1000);
    const tags = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
    expect((await slots(tags.map((t) => `${shared.keyPrefix}cache-tag:${t}`))).size).toBeGreaterThan(1);
    const keys = Array.from({ length: 24 }, (_, i) => `/items/${i}`);
    for (const key of keys) await store.writeVariant(key, entry(key, tags), 60_000);
    // the records are spread over the masters
    const records = await allKeys(`${shared.keyPrefix}cache::/items/*`);
    expect(records).toEqual(keys.map((k) => store.entryKey(k)).sort());
    expect((await slots(records)).size).toBeGreaterThan(1);
    // each tag set has every key, and a TTL
    for (const tag of tags.slice(1)) {
      const name = `${shared.keyPrefix}cache-tag:${tag}`;
      expect((await client.sMembers(name)).sort()).toEqual([...keys].sort());
      expect(await client.pTTL(name)).toBeGreaterThan(0);
    }
    expect((await store.readVariants('/items/3'))[0]?.body.toString()).toBe('/items/3');
    // prefix: every master scanned
    expect((await store.keysWithPrefix('/items/')).sort()).toEqual([...keys].sort());
    expect(await store.keysWithPrefix('/nothing/')).toEqual([]);
    // tag: the set is read and deleted
    expect((await store.takeTagged(['alpha'])).sort()).toEqual([...keys].sort());
    expect(await client.exists(`${shared.keyPrefix}cache-tag:alpha`)).toBe(0);
    // many keys in many slots: one count, no CROSSSLOT
    expect(await store.deleteKeys([...keys, '/items/missing'])).toBe(24);
    expect(await allKeys(`${shared.keyPrefix}cache::*`)).toEqual([]);
    expect(await store.readVariants('/items/3')).toEqual([]);
    expect(await store.deleteKeys([])).toBe(0);
  });
});
