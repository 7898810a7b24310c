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
    // No heartbeat here: this test is about run()'s own timeouts.
    const redis = createSharedRedis({
      url: server.url,
      commandTimeout: 200,
      heartbeatInterval: 0,
      logger: silentLogger,
    });
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

  it('heartbeat: a paused Redis (open socket) is reported down within the timeout, and up once it answers', async () => {
    const redis = createSharedRedis({
      url: server.url,
      commandTimeout: 200,
      heartbeatInterval: 100,
      logger: silentLogger,
    });
    const statuses: RedisStatus[] = [];
    try {
      await waitFor(() => redis.isUp);
      redis.onStatusChange((s) => statuses.push(s));
      await waitFor(() => redis.health().heartbeatMs !== undefined);
      expect(redis.health().missedHeartbeats).toBe(0);
      server.pause();
      const paused = Date.now();
      // No command is sent by anyone: only the heartbeat can notice.
      await waitFor(() => redis.status === 'down', 3000);
      expect(Date.now() - paused).toBeLessThan(2000);
      expect(redis.health().missedHeartbeats).toBeGreaterThanOrEqual(1);
      server.resume();
      await waitFor(() => redis.isUp, 5000);
      expect(statuses).toEqual(['down', 'up']);
      expect(await redis.run((c) => c.ping())).toBe('PONG');
    } finally {
      server.resume();
      await redis.close();
    }
  });

  it('a command is not late when our own event loop was the one blocked (loop-time deadline)', async () => {
    const redis = createSharedRedis({
      url: server.url,
      commandTimeout: 100,
      heartbeatInterval: 0,
      logger: silentLogger,
    });
    try {
      await waitFor(() => redis.isUp);
      for (let round = 0; round < 5; round++) {
        const reply = redis.run((c) => c.ping());
        // Block this process for 3× the timeout right after sending: Redis answers in
        // microseconds, the reply waits in our socket. A wall-clock timer would blame Redis.
        const until = Date.now() + 300;
        while (Date.now() < until) {
          /* busy */
        }
        expect(await reply).toBe('PONG');
      }
      expect(redis.isUp).toBe(true);
      expect(redis.health().errors).toBe(0);
    } finally {
      await redis.close();
    }
  });

  it('joinFleet: instances count each other through heartbeats; the count survives an outage; leaving shrinks it', async () => {
    const prefix = uniquePrefix('fleet');
    const make = (id: string) =>
      createSharedRedis({
        url: server.url,
        keyPrefix: prefix,
        heartbeatInterval: 100,
        instanceId: id,
        logger: silentLogger,
      });
    const a = make('a');
    const b = make('b');
    const c = make('c');
    try {
      await waitFor(() => a.isUp && b.isUp && c.isUp);
      expect(a.liveInstances).toBe(1);
      await Promise.all([a.joinFleet(), b.joinFleet(), c.joinFleet()]);
      await waitFor(() => a.liveInstances === 3 && b.liveInstances === 3 && c.liveInstances === 3, 3000);
      expect(a.health().liveInstances).toBe(3);
      await c.close();
      await waitFor(() => a.liveInstances === 2 && b.liveInstances === 2, 3000);
      server.pause();
      await waitFor(() => a.status === 'down', 3000);
      expect(a.liveInstances).toBe(2);
      server.resume();
      await waitFor(() => a.isUp && b.isUp, 5000);
    } finally {
      server.resume();
      await a.close();
      await b.close();
      await c.close();
      await cleanPrefix(server.url, prefix);
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
    expect(() => createSharedRedis({ url: 'redis://x', heartbeatInterval: -1 })).toThrow(
      /option "redis.heartbeatInterval"/,
    );
    expect(() => createSharedRedis({ url: 'redis://x', instanceId: '' })).toThrow(/option "redis.instanceId"/);
  });
});
