/**
 * The Redis store under real faults, on private redis-servers a test can stop and pause:
 * one round trip per request, NOSCRIPT recovery, fail-open with a local limiter, fail-closed
 * 503s, automatic recovery, and no hanging on a frozen Redis.
 */
import { createRegistry, createSharedRedis, type SharedRedis } from '@perfstack/core';
import { type RateLimiter, type RateLimitOptions, rateLimit } from '@perfstack/rate-limit';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, waitFor } from '../../../test/helpers/http.js';
import { type RedisServerHandle, startRedisServer } from '../../../test/helpers/redis.js';
import { memoryLogger } from './support.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function privateRedis(commandTimeout = 200): Promise<{ server: RedisServerHandle; redis: SharedRedis }> {
  const server = await startRedisServer();
  cleanups.push(() => server.stop());
  const redis = createSharedRedis({
    url: server.url,
    commandTimeout,
    maxReconnectDelay: 100,
    connectTimeout: 500,
    logger: memoryLogger(),
  });
  cleanups.push(() => redis.close());
  await redis.connect();
  return { server, redis };
}

async function serve(options: RateLimitOptions): Promise<{ url: string; limiter: RateLimiter }> {
  const limiter = rateLimit({ registry: createRegistry(), logger: memoryLogger(), ...options });
  const app = express();
  app.use(limiter);
  app.use((_req, res) => {
    res.send('ok');
  });
  const server = await listen(app as never);
  cleanups.push(
    () => limiter.close(),
    () => server.close(),
  );
  return { url: server.url, limiter };
}

/** `INFO commandstats` as { command: calls }. */
async function commandCalls(url: string): Promise<Record<string, number>> {
  const probe = createSharedRedis({ url, logger: memoryLogger() });
  await probe.connect();
  try {
    const info = String(await probe.client.sendCommand(['INFO', 'commandstats']));
    const calls: Record<string, number> = {};
    for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[match[1] as string] = Number(match[2]);
    return calls;
  } finally {
    await probe.close();
  }
}

const userHeader = (user: string) => ({ headers: { 'x-user': user } });
const byUser: RateLimitOptions['keyGenerator'] = (req) => String(req.headers['x-user'] ?? 'anon');

describe('Redis store', () => {
  it('costs exactly one Redis round trip per request (EVALSHA), even with several limits', async () => {
    const { server, redis } = await privateRedis();
    const { url } = await serve({
      redis,
      keyGenerator: byUser,
      limits: [
        { limit: 5, window: '1m', name: 'per-user' },
        { limit: 1000, window: '1m', name: 'everyone', scope: 'global', algorithm: 'token-bucket' },
      ],
    });
    expect((await request(url, userHeader('warm'))).status).toBe(200);
    const before = await commandCalls(server.url);
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await request(url, userHeader(`u${i % 3}`))).status);
    const after = await commandCalls(server.url);
    expect(statuses.filter((s) => s === 200)).toHaveLength(15);
    const delta: Record<string, number> = {};
    for (const [cmd, calls] of Object.entries(after)) {
      const d = calls - (before[cmd] ?? 0);
      // The connection's heartbeat (PING, or the fleet MULTI) is not the request path.
      const heartbeat = ['ping', 'multi', 'exec', 'zadd', 'zremrangebyscore', 'zcard'];
      if (d > 0 && !['info', 'hello', 'client|setinfo', 'client|setname', 'select', ...heartbeat].includes(cmd))
        delta[cmd] = d;
    }
    // Commands run inside the script are counted too; what crossed the network is EVALSHA only.
    expect(delta.evalsha).toBe(30);
    expect(Object.keys(delta).sort()).toEqual(['evalsha', 'hmget', 'hset', 'pexpire', 'time'].sort());
  });

  it('recovers from an emptied script cache (NOSCRIPT) with EVAL, transparently', async () => {
    const { server, redis } = await privateRedis();
    const { url } = await serve({ redis, limit: 2, keyGenerator: () => 'k' });
    expect((await request(url)).status).toBe(200);
    await redis.client.sendCommand(['SCRIPT', 'FLUSH']);
    const before = await commandCalls(server.url);
    expect((await request(url)).status).toBe(200);
    expect((await request(url)).status).toBe(429);
    const after = await commandCalls(server.url);
    expect((after.eval ?? 0) - (before.eval ?? 0)).toBe(1);
  });

  it('failOpen (default): Redis stopped mid-run → no failed request, the local limiter still blocks a flood, recovery is automatic', async () => {
    // A stopped server fails calls at once (the connection closes), so this test needs no short
    // timeout; a long one keeps a loaded machine from turning a slow answer into a local decision
    // (a timed-out call may still count in Redis: README "Failure policy").
    const { server, redis } = await privateRedis(5000);
    const { url, limiter } = await serve({ redis, limit: 5, window: '1m', keyGenerator: byUser });
    const statuses: number[] = [];
    const run = async (user: string, count: number) => {
      const batch = await Promise.all(Array.from({ length: count }, () => request(url, userHeader(user))));
      for (const res of batch) statuses.push(res.status);
      return batch.filter((r) => r.status === 200).length;
    };
    expect(await run('steady', 3)).toBe(3);
    const midRun = Promise.all([run('a', 4), run('b', 4), run('c', 4)]);
    await server.stop();
    await midRun;
    expect(await run('d', 4)).toBe(4);
    // A flood while Redis is down: the local limiter lets exactly `limit` through.
    expect(await run('flood', 40)).toBe(5);
    expect(statuses.every((s) => s === 200 || s === 429)).toBe(true);
    expect(limiter.health()).toMatchObject({ status: 'degraded', store: 'redis' });
    expect(limiter.stats().fallback).toBeGreaterThanOrEqual(44);

    await server.start();
    await waitFor(() => redis.isUp, 5000);
    // The connection being up is not enough: if a call failed during the outage (whether one did
    // depends on timing), the limiter goes back to Redis only once a probe gets an answer, and
    // requests that arrive meanwhile are decided locally (README "Failure policy"). So probe, one
    // request at a time, until the limiter itself reports that it is back on Redis.
    await waitFor(async () => {
      await request(url, userHeader('probe'));
      return limiter.health().status === 'ok';
    }, 5000);
    // Back on Redis (the restarted test server keeps no data, so "steady" starts afresh),
    // and no longer on the local limiter:
    const fallbackBefore = limiter.stats().fallback;
    expect(await run('steady', 7)).toBe(5);
    expect(limiter.stats().fallback).toBe(fallbackBefore);
    expect(limiter.health()).toEqual({ status: 'ok', store: 'redis', storeErrors: limiter.stats().storeErrors });
  });

  it('failOpen: false → 503 STORE_UNAVAILABLE while Redis is down, normal service when it returns', async () => {
    const { server, redis } = await privateRedis();
    const { url, limiter } = await serve({ redis, limit: 5, failOpen: false });
    expect((await request(url)).status).toBe(200);
    await server.stop();
    await waitFor(() => !redis.isUp, 5000);
    const res = await request(url);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.json()).toMatchObject({ code: 'STORE_UNAVAILABLE', status: 503 });
    expect(res.headers.ratelimit).toBeUndefined();
    expect(limiter.health()).toMatchObject({ status: 'degraded' });
    await server.start();
    await waitFor(() => redis.isUp, 5000);
    const back = await request(url);
    expect(back.status).toBe(200);
    // The restarted test server keeps no data: a fresh window.
    expect(back.headers.ratelimit).toBe('"5-in-1min"; r=4; t=60');
    expect(limiter.stats().unavailable).toBe(1);
  });

  it('a frozen Redis (SIGSTOP) never hangs a request: the command times out and the local limiter answers', async () => {
    const { server, redis } = await privateRedis();
    const { url, limiter } = await serve({ redis, limit: 5, keyGenerator: byUser });
    expect((await request(url)).status).toBe(200);
    server.pause();
    cleanups.push(() => server.resume());
    const res = await request(url, { timeout: 3000 });
    expect(res.status).toBe(200);
    expect(limiter.stats()).toMatchObject({ storeErrors: 1, fallback: 1 });
    expect(limiter.health().status).toBe('degraded');
    // Either the first of these probes Redis (and waits out the timeout) while the others
    // take the local quota, or the connection's heartbeat has already marked Redis down and
    // all five go local: either way the local quota (1 + 4 = 5) leaves exactly one refused.
    const statuses = (await Promise.all(Array.from({ length: 5 }, () => request(url, { timeout: 3000 })))).map(
      (r) => r.status,
    );
    expect(statuses.sort()).toEqual([200, 200, 200, 200, 429]);
    expect(limiter.stats().fallback).toBe(6);
    server.resume();
    // Redis answers again: the next request probes it and health is back to ok...
    await waitFor(async () => (await request(url, { timeout: 3000 })) && limiter.health().status === 'ok', 5000);
    // ...but this client used its whole local share during the stall: it keeps being decided
    // locally until its window ends, so recovery hands out no fresh quota (README "Failure policy").
    const fallback = limiter.stats().fallback;
    const after = await request(url);
    expect(after.status).toBe(429);
    expect(limiter.stats().fallback).toBe(fallback + 1);
    // A client the stall did not touch is decided by Redis.
    const other = await request(url, userHeader('fresh'));
    expect(other.status).toBe(200);
    expect(other.headers.ratelimit).toBe('"5-in-1min"; r=4; t=60');
    expect(limiter.stats().fallback).toBe(fallback + 1);
  });
});
