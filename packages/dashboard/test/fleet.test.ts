import http from 'node:http';
import { createSharedRedis, OnceLogger, type SharedRedis } from '@perfstack/core';
import { dashboard, FLEET_CHANNEL, type FleetTotals } from '@perfstack/dashboard';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';
import { type RedisServerHandle, startRedisServer, uniquePrefix } from '../../../test/helpers/redis.js';
import { Fleet, parseMessage } from '../src/fleet.js';
import { fakeSources, memoryLogger } from './fakes.js';

let redisServer: RedisServerHandle;
beforeAll(async () => {
  redisServer = await startRedisServer();
});
afterAll(async () => {
  await redisServer.stop();
});

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function instance(id: string, keyPrefix: string, options: Parameters<typeof dashboard>[0] = {}) {
  const redis = createSharedRedis({ url: redisServer.url, keyPrefix, logger: memoryLogger() });
  await redis.connect();
  const sources = fakeSources();
  const board = dashboard({
    instanceId: id,
    redis,
    sources,
    fleetInterval: 100,
    fleetTimeout: 700,
    basePath: '/dashboard',
    ...options,
  });
  const server = await listen((req, res) => board(req, res, () => res.end()));
  cleanups.push(async () => {
    await board.close();
    await server.close();
    await redis.close();
  });
  return { redis, sources, board, server };
}

type Snapshot = {
  fleet: {
    connected: boolean;
    instances: {
      id: string;
      self: boolean;
      requests: { total: number; rps: number };
      cache: { hits: number } | null;
    }[];
    totals: FleetTotals;
  } | null;
};

const snapshotOf = async (server: TestServer) =>
  (await request(`${server.url}/dashboard/api/snapshot`)).json<Snapshot>();

describe('fleet view over a real Redis', () => {
  it('two instances each see the other, and the totals', async () => {
    const prefix = uniquePrefix('fleet');
    const a = await instance('web-1', prefix);
    const b = await instance('web-2', prefix);
    for (let i = 0; i < 3; i++) a.sources.timing.record({ method: 'GET', route: '/a', status: 200, ms: 10 });
    for (let i = 0; i < 5; i++) b.sources.timing.record({ method: 'GET', route: '/b', status: 500, ms: 300 });
    a.sources.cache.hits = 7;
    b.sources.cache.misses = 3;
    b.sources.rateLimit.blocked = 4;

    const seesBoth = async (server: TestServer) => {
      const s = await snapshotOf(server);
      const ids = s.fleet?.instances.map((i) => i.id) ?? [];
      return ids.includes('web-1') && ids.includes('web-2') && s.fleet!.totals.requests.total === 8;
    };
    await waitFor(() => seesBoth(a.server), 5000);
    await waitFor(() => seesBoth(b.server), 5000);

    const fromA = await snapshotOf(a.server);
    expect(fromA.fleet!.connected).toBe(true);
    expect(fromA.fleet!.instances.map((i) => [i.id, i.self, i.requests.total])).toEqual([
      ['web-1', true, 3],
      ['web-2', false, 5],
    ]);
    expect(fromA.fleet!.totals).toEqual({
      instances: 2,
      requests: { total: 8, rps: 0.13, errorRate: 0.625, inFlight: 0 },
      latency: { p95Max: 300, p99Max: 300 },
      cache: { hits: 7, misses: 3, hitRatio: 0.7 },
      rateLimit: { blocked: 4 },
      breakers: { open: 0 },
      process: { rssBytes: expect.any(Number) },
      alerts: 0,
    });
    const fromB = await snapshotOf(b.server);
    expect(fromB.fleet!.instances.map((i) => [i.id, i.self])).toEqual([
      ['web-2', true],
      ['web-1', false],
    ]);
    expect(fromB.fleet!.totals.requests.total).toBe(8);
  });

  it('an instance not heard from for fleetTimeout drops out', async () => {
    const prefix = uniquePrefix('fleet');
    const a = await instance('web-1', prefix);
    const b = await instance('web-2', prefix);
    await waitFor(async () => (await snapshotOf(a.server)).fleet!.instances.length === 2, 5000);
    await b.board.close();
    await waitFor(async () => (await snapshotOf(a.server)).fleet!.instances.length === 1, 5000);
    expect((await snapshotOf(a.server)).fleet!.instances.map((i) => i.id)).toEqual(['web-1']);
  });

  it('instances on another key prefix are another fleet; garbage on the channel is ignored', async () => {
    const prefix = uniquePrefix('fleet');
    const a = await instance('web-1', prefix);
    await instance('other-1', uniquePrefix('other'));
    for (const junk of [
      'not json',
      '{"v":2}',
      '{"v":1,"instance":{"id":""}}',
      JSON.stringify({ v: 1, instance: { id: 'x'.repeat(300) } }),
    ]) {
      await a.redis.publish(FLEET_CHANNEL, junk);
    }
    await a.redis.publish(
      FLEET_CHANNEL,
      JSON.stringify({ v: 1, instance: { id: 'hand-made', requests: { total: 'lots', rps: -1 } } }),
    );
    await waitFor(async () => (await snapshotOf(a.server)).fleet!.instances.length === 2, 5000);
    const s = await snapshotOf(a.server);
    expect(s.fleet!.instances.map((i) => [i.id, i.requests.total, i.requests.rps])).toEqual([
      ['web-1', 0, 0],
      ['hand-made', 0, 0],
    ]);
  });

  it('the page shows the fleet through the stream too', async () => {
    const prefix = uniquePrefix('fleet');
    const a = await instance('web-1', prefix, { streamInterval: 100 });
    await instance('web-2', prefix);
    const text = await new Promise<string>((resolve, reject) => {
      let buffer = '';
      const req = http.get(`${a.server.url}/dashboard/api/stream`, { agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          if (buffer.includes('"id":"web-2"')) {
            req.destroy();
            resolve(buffer);
          }
        });
      });
      req.on('error', reject);
      setTimeout(() => {
        req.destroy();
        reject(new Error('no fleet data on the stream'));
      }, 5000).unref();
    });
    expect(text).toContain('"fleet":{"instances":[{"id":"web-1","self":true');
  });
});

describe('Fleet (unit, injectable clock)', () => {
  it('keeps a peer until fleetTimeout passes without news, and caps nothing it should not', () => {
    let now = 1_000_000;
    const fakeRedis = { isUp: false } as unknown as SharedRedis;
    const local = dashboard({ instanceId: 'me' });
    cleanups.push(() => local.close());
    const fleet = new Fleet({
      redis: fakeRedis,
      instanceId: 'me',
      interval: 1000,
      timeout: 10_000,
      now: () => now,
      log: new OnceLogger(memoryLogger()),
      snapshot: () => local.snapshot(),
    });
    const message = (id: string) =>
      JSON.stringify({ v: 1, instance: { id, requests: { total: 2, rps: 1, errorRate: 0, inFlight: 0 } } });
    fleet.receive(message('peer'));
    fleet.receive(message('me'));
    expect(fleet.figures(local.snapshot()).instances.map((i) => i.id)).toEqual(['me', 'peer']);
    now += 9_999;
    expect(fleet.figures(local.snapshot()).instances.map((i) => i.id)).toEqual(['me', 'peer']);
    now += 2;
    expect(fleet.figures(local.snapshot()).instances.map((i) => i.id)).toEqual(['me']);
    expect(fleet.figures(local.snapshot()).connected).toBe(false);
  });

  it('parseMessage keeps only well-formed, bounded values', () => {
    expect(parseMessage('{"v":1,"instance":{"id":"a","requests":{"errorRate":7},"cache":null}}', 5)).toMatchObject({
      id: 'a',
      lastSeen: 5,
      requests: { total: 0, rps: 0, errorRate: 1, inFlight: 0 },
      cache: null,
    });
    expect(parseMessage('x'.repeat(70_000), 1)).toBeUndefined();
    expect(parseMessage('[]', 1)).toBeUndefined();
  });
});
