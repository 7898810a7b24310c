import { createSharedRedis, SharedRedis, silentLogger } from '@perfstack/core';
import { it } from 'vitest';
import { createCluster } from '../../packages/core/node_modules/@keyv/redis/dist/index.js';
import { startRedisCluster } from './cluster.js';

it('explore', async () => {
  const c = await startRedisCluster();
  const cluster = createCluster({ rootNodes: c.urls.map((url) => ({ url })) });
  await cluster.connect();
  console.log('isOpen', cluster.isOpen, 'isReady' in cluster, (cluster as never as { isReady: unknown }).isReady);
  try {
    createSharedRedis({ client: cluster as never });
  } catch (e) {
    console.log('createSharedRedis:', (e as Error).message);
  }
  try {
    createSharedRedis(cluster as never);
  } catch (e) {
    console.log('createSharedRedis(plain):', (e as Error).message);
  }
  const events: string[] = [];
  for (const ev of ['ready', 'end', 'error', 'reconnecting', 'connect', 'node-ready', 'node-error', 'disconnect'])
    cluster.on(ev as never, () => events.push(ev));
  const shared = new SharedRedis(cluster as never, false, 'ps:', 500, silentLogger);
  console.log('shared isUp', shared.isUp, shared.status);
  await cluster.close();
  await c.stop();
}, 60_000);
