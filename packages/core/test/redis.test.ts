import {
  createSharedRedis,
  type RedisStatus,
  RedisTimeoutError,
  RedisUnavailableError,
  silentLogger,
  UNRESPONSIVE_AFTER,
} from '@perfstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test/helpers/http.js';
import { cleanPrefix, type RedisServerHandle, startRedisServer, uniquePrefix } from '../../../test/helpers/redis.js';

describe('SharedRedis (real redis-server)', () => {
  let server: RedisServerHandle;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('connects, serves a Keyv namespace, and publishes/subscribes', async () => {
    const prefix = uniquePrefix('core');
    const redis = createSharedRedis({ url: server.url, keyPrefix: prefix });
    try {
      await waitFor(() => redis.isUp);
      expect(redis.health().status).toBe('up');
      const keyv = redis.keyv<string>('kv');
      await keyv.set('a', 'hello', 10_000);
      expect(await keyv.get('a')).toBe('hello');
      expect(await redis.client.exists(`${prefix}kv::a`)).toBe(1);
      const received: string[] = [];
      const sub = await redis.subscribe('events', (m) => received.push(m));
      await redis.publish('events', 'ping');
      await waitFor(() => received.length === 1);
      expect(received).toEqual(['ping']);
      sub.dispose();
    } finally {
      await cleanPrefix(server.url, prefix);
      await redis.close();
    }
    expect(redis.status).toBe('closed');
  });

  it('fails fast while Redis is down, reports it, and recovers by itself', async () => {
    const redis = createSharedRedis({
      url: server.url,
      commandTimeout: 300,
      maxReconnectDelay: 100,
      logger: silentLogger,
    });
    const statuses: RedisStatus[] = [];
    redis.onStatusChange((s) => statuses.push(s));
    try {
      await waitFor(() => redis.isUp);
      await server.stop();
      await waitFor(() => !redis.isUp, 5000);
      expect(redis.health().status).toBe('down');
      const started = Date.now();
      await expect(redis.client.get('x')).rejects.toThrow();
      expect(Date.now() - started).toBeLessThan(1000);
      await server.start();
      await waitFor(() => redis.isUp, 10_000);
      expect(await redis.client.ping()).toBe('PONG');
      expect(statuses).toContain('down');
      expect(statuses.at(-1)).toBe('up');
      expect(redis.health().errors).toBeGreaterThan(0);
    } finally {
      await redis.close();
    }
  });

  it('run() times out on a paused (SIGSTOP) Redis, goes down after repeated timeouts, and comes back', async () => {
    const redis = createSharedRedis({ url: server.url, commandTimeout: 200, logger: silentLogger });
    try {
      await waitFor(() => redis.isUp);
      expect(await redis.run((c) => c.ping())).toBe('PONG');
      server.pause();
      for (let i = 0; i < UNRESPONSIVE_AFTER; i++) {
        const started = Date.now();
        await expect(redis.run((c) => c.get('x'))).rejects.toBeInstanceOf(RedisTimeoutError);
        expect(Date.now() - started).toBeLessThan(1500);
      }
      expect(redis.isUp).toBe(false);
      expect(redis.status).toBe('down');
      await expect(redis.run((c) => c.get('x'))).rejects.toBeInstanceOf(RedisUnavailableError);
      server.resume();
      await waitFor(() => redis.isUp, 5000);
      expect(await redis.run((c) => c.ping())).toBe('PONG');
    } finally {
      server.resume();
      await redis.close();
    }
  });

  it('starts down without a server and never rejects connect()', async () => {
    const redis = createSharedRedis({
      url: 'redis://127.0.0.1:1',
      connectTimeout: 200,
      logger: { warn() {}, error() {} },
    });
    try {
      await redis.connect();
      expect(redis.isUp).toBe(false);
      expect(['down', 'connecting']).toContain(redis.status);
    } finally {
      await redis.close();
    }
  });

  it('rejects bad options by name', () => {
    expect(() => createSharedRedis('http://nope')).toThrow(
      '@perfstack/core: option "redis" must be a redis:// or rediss:// URL, a node-redis client, or { url | client, ... }, got "http://nope"',
    );
    expect(() => createSharedRedis({ url: 'redis://x', commandTimeout: 'soon' })).toThrow(
      /option "redis.commandTimeout"/,
    );
    expect(() => createSharedRedis({ url: 'redis://x', nope: 1 } as never)).toThrow('unknown option "nope"');
  });
});
