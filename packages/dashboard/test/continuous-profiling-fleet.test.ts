/**
 * Continuous profiles for the fleet, over a real Redis: two instances list each other's
 * profiles, serve and diff them, each instance's list stays at `keep` with its dropped data
 * deleted, every key expires, and a Redis that fails leaves the listing to the local ring.
 */
import { createSharedRedis, type SharedRedis } from '@perfstack/core';
import { type ContinuousProfilesReport, type CpuProfile, dashboard, type ProfileDiff } from '@perfstack/dashboard';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { cleanPrefix, redisUrl, uniquePrefix } from '../../../test/helpers/redis.js';
import { memoryLogger } from './fakes.js';
import { syntheticProfile } from './synthetic-profile.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function instance(id: string, keyPrefix: string, profiles: CpuProfile[], keep = 3) {
  const url = await redisUrl();
  const redis = createSharedRedis({ url, keyPrefix, logger: memoryLogger() });
  await redis.connect();
  let i = 0;
  const board = dashboard({
    instanceId: id,
    redis,
    basePath: '/dashboard',
    leakWatch: false,
    history: false,
    logger: memoryLogger(),
    profiling: {
      continuous: {
        every: '1h',
        duration: '1s',
        keep,
        redisTtl: '10m',
        record: async () => profiles[Math.min(i++, profiles.length - 1)]!,
      },
    },
  });
  const server: TestServer = await listen((req, res) => board(req, res, () => res.end()));
  cleanups.push(async () => {
    await board.close();
    await server.close();
    await redis.close();
  });
  return { redis, board, server };
}

const listing = async (server: TestServer) =>
  (await request(`${server.url}/dashboard/api/profiles`)).json<ContinuousProfilesReport>();

describe('continuous profiles in Redis', () => {
  it("two instances list each other's profiles, serve them and diff across instances", async () => {
    const prefix = uniquePrefix('profiles');
    cleanups.push(async () => cleanPrefix(await redisUrl(), prefix));
    const a = await instance('web-1', prefix, [syntheticProfile([['onWeb1', 100]])]);
    const b = await instance('web-2', prefix, [
      syntheticProfile([
        ['onWeb1', 50],
        ['onWeb2', 150],
      ]),
    ]);
    expect(await a.board.profiles!.runOnce()).toBe('recorded');
    expect(await b.board.profiles!.runOnce()).toBe('recorded');

    for (const side of [a, b]) {
      const r = await listing(side.server);
      expect(r.profiles.map((p) => p.instanceId).sort()).toEqual(['web-1', 'web-2']);
    }
    const fromA = await listing(a.server);
    const theirs = fromA.profiles.find((p) => p.instanceId === 'web-2')!;
    const mine = fromA.profiles.find((p) => p.instanceId === 'web-1')!;
    expect(theirs.top.map((f) => f.functionName)).toEqual(['onWeb2', 'onWeb1']);

    // web-1 serves web-2's profile from Redis: summary and the file as recorded.
    const summary = await request(`${a.server.url}/dashboard/api/profiles/${theirs.id}`);
    expect(summary.status).toBe(200);
    expect(summary.json()).toMatchObject({ id: theirs.id, instanceId: 'web-2', summary: { sampleCount: 2 } });
    const file = await request(`${a.server.url}/dashboard/api/profiles/${theirs.id}?format=cpuprofile`);
    expect(file.status).toBe(200);
    expect(file.headers['content-disposition']).toMatch(/filename="cpu-web-2-/);
    expect(file.json()).toEqual(
      syntheticProfile([
        ['onWeb1', 50],
        ['onWeb2', 150],
      ]),
    );

    const diff = await request(`${a.server.url}/dashboard/api/profiles/diff?before=${mine.id}&after=${theirs.id}`);
    expect(diff.status).toBe(200);
    const d = diff.json<ProfileDiff & { instances: { before: string; after: string } }>();
    expect(d.instances).toEqual({ before: 'web-1', after: 'web-2' });
    expect(d.rows.map((r) => [r.functionName, r.beforeShare, r.afterShare, r.delta])).toEqual([
      ['onWeb1', 1, 0.25, -0.75],
      ['onWeb2', 0, 0.75, 0.75],
    ]);
  });

  it("keeps each instance's list at `keep`, deletes the dropped profiles' data, and expires every key", async () => {
    const prefix = uniquePrefix('profiles');
    cleanups.push(async () => cleanPrefix(await redisUrl(), prefix));
    const a = await instance('web-1', prefix, [syntheticProfile([['f', 10]])], 2);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      await a.board.profiles!.runOnce();
      ids.push((await listing(a.server)).profiles[0]!.id);
    }
    const c = a.redis.client;
    expect(await c.lLen(`${prefix}dashboard:profiles:list:web-1`)).toBe(2);
    // The two oldest are gone from Redis, the two newest are there.
    expect(await c.exists(ids.map((id) => `${prefix}dashboard:profiles:data:${id}`))).toBe(2);
    expect(await c.exists(`${prefix}dashboard:profiles:data:${ids[0]}`)).toBe(0);
    for (const key of [
      `${prefix}dashboard:profiles:list:web-1`,
      `${prefix}dashboard:profiles:instances`,
      `${prefix}dashboard:profiles:data:${ids[3]}`,
    ]) {
      const ttl = await c.pTTL(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(600_000);
    }
    expect(await c.zRange(`${prefix}dashboard:profiles:instances`, 0, -1)).toEqual(['web-1']);
  });

  it('ignores what it cannot parse, and lists its own ring when Redis is down', async () => {
    const prefix = uniquePrefix('profiles');
    cleanups.push(async () => cleanPrefix(await redisUrl(), prefix));
    const a = await instance('web-1', prefix, [syntheticProfile([['f', 10]])]);
    await a.board.profiles!.runOnce();
    const c = a.redis.client;
    await c.zAdd(`${prefix}dashboard:profiles:instances`, { score: Date.now(), value: 'intruder' });
    await c.lPush(`${prefix}dashboard:profiles:list:intruder`, ['not json', JSON.stringify({ id: '../x' })]);
    expect((await listing(a.server)).profiles.map((p) => p.instanceId)).toEqual(['web-1']);
    await (a.redis as SharedRedis).close();
    const r = await listing(a.server);
    expect(r.profiles.map((p) => p.instanceId)).toEqual(['web-1']);
  });
});
