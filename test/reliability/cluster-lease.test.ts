/**
 * Leased quota under `node:cluster` (issue 16): four workers, no Redis, real processes and
 * real HTTP (fixtures/lease-app.mjs, on the built packages). A worker that holds a block of a
 * key's budget admits from it with no message to the primary; the fleet must still admit
 * exactly `limit` per window:
 *
 * - skewed traffic, limit 100 (blocks of 8) and 1,000 (automatic blocks): one worker takes a
 *   block and then gets nothing, one gets most of a concurrent burst — exactly the limit;
 * - a worker killed while holding a block: its block counts as used (exactly `limit − unused`);
 * - window rollover: a block does not outlive its window, nor weigh on the next one;
 * - `resetKey` while two workers hold blocks: once it resolves, exactly the limit again.
 *
 * Requests reach a chosen worker through keep-alive connections sorted by the worker that
 * accepted them (the kernel spreads new connections over the workers).
 */
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, waitFor } from '../helpers/http.js';
import { type BurstResponse, ConnectionPool } from './burst.js';
import { startClusterPrimary } from './cluster-primary.js';

const fixture = fileURLToPath(new URL('./fixtures/lease-app.mjs', import.meta.url));

let primary: ChildProcess;
let control = '';
let port = 0;
/** Keep-alive connections by the pid of the worker that serves them. */
const byWorker = new Map<number, ConnectionPool>();
let pids: number[] = [];

const workers = async () => (await request(`${control}/workers`)).json<Array<{ id: number; pid: number }>>();

/** `n` requests to `path` for client `key`, all at once, on worker `pid`'s connections. */
function burst(pid: number, path: string, key: string, n: number): Promise<BurstResponse[]> {
  return (byWorker.get(pid) as ConnectionPool).burst(
    Array.from({ length: n }, () => ({ path, headers: { 'x-client': key } })),
  );
}

/** `n` requests one after the other on worker `pid` (each waits for the previous answer). */
async function oneByOne(pid: number, path: string, key: string, n: number): Promise<BurstResponse[]> {
  const out: BurstResponse[] = [];
  for (let i = 0; i < n; i++) out.push(...(await burst(pid, path, key, 1)));
  return out;
}

/** Blocks of leased quota worker `pid` holds for limiter `l`. */
async function leases(pid: number, l: string): Promise<number> {
  const [res] = await (byWorker.get(pid) as ConnectionPool).burst([{ path: `/stats?l=${l}` }]);
  return (JSON.parse((res as BurstResponse).body) as { leases: number }).leases;
}

const statuses = (responses: readonly BurstResponse[]) => {
  const out: Record<number, number> = {};
  for (const r of responses) out[r.status] = (out[r.status] ?? 0) + 1;
  return out;
};

beforeAll(async () => {
  const ready = await startClusterPrimary(fixture, 4);
  primary = ready.primary;
  control = `http://127.0.0.1:${ready.control}`;
  port = ready.app;
  await waitFor(async () => (await workers()).length === 4, 10_000);
  // Sort connections by the worker that accepted them, until every worker has 25.
  const pending: ConnectionPool[] = [];
  const count = new Map<number, number>();
  for (let tries = 0; tries < 2000 && (count.size < 4 || [...count.values()].some((c) => c < 25)); tries++) {
    const pool = await ConnectionPool.open([port], 1);
    const [res] = await pool.burst([{ path: '/pid' }]);
    const pid = Number((res as BurstResponse).body);
    if ((count.get(pid) ?? 0) >= 25) {
      pool.close();
      continue;
    }
    count.set(pid, (count.get(pid) ?? 0) + 1);
    pending.push(pool);
    (pool as unknown as { pid: number }).pid = pid;
  }
  pids = [...count.keys()];
  expect(pids).toHaveLength(4);
  for (const pid of pids) {
    const mine = pending.filter((p) => (p as unknown as { pid: number }).pid === pid);
    byWorker.set(pid, new MergedPool(mine) as unknown as ConnectionPool);
  }
}, 120_000);

/** Several one-connection pools as one (requests spread over them in turn). */
class MergedPool {
  readonly #pools: ConnectionPool[];
  constructor(pools: ConnectionPool[]) {
    this.#pools = pools;
  }
  burst(requests: Parameters<ConnectionPool['burst']>[0]): Promise<BurstResponse[]> {
    return Promise.all(
      requests.map(async (r, i) => ((await this.#pools[i % this.#pools.length]?.burst([r])) ?? [])[0] as BurstResponse),
    );
  }
  close(): void {
    for (const p of this.#pools) p.close();
  }
}

afterAll(async () => {
  for (const pool of byWorker.values()) pool.close();
  if (primary && primary.exitCode === null) {
    await new Promise<void>((resolve) => {
      primary.once('exit', () => resolve());
      primary.kill('SIGTERM');
    });
  }
});

describe('node:cluster, 4 workers, leased quota', () => {
  it('limit 100, blocks of 8, skewed: one worker holds a block and goes quiet, another takes most of 1,000 → exactly 100', async () => {
    const [hot, idle, c, d] = pids as [number, number, number, number];
    // The key is busy after 8 decisions; the 8th is answered with a block of 8.
    const first = await oneByOne(idle, '/a', 'skew100', 10);
    expect(statuses(first)).toEqual({ 200: 10 });
    expect(await leases(idle, 'a')).toBe(1);
    // Remaining counts the idle worker's 6 unused tokens as its own: 100 − 16 + 6 = 90.
    expect((first[9] as BurstResponse).body).toBe(`${idle} 90`);
    const [many, fewC, fewD] = await Promise.all([
      burst(hot, '/a', 'skew100', 900),
      burst(c, '/a', 'skew100', 50),
      burst(d, '/a', 'skew100', 50),
    ]);
    // The idle worker's block was recalled and its 6 tokens admitted elsewhere.
    expect(statuses([...many, ...fewC, ...fewD])).toEqual({ 200: 90, 429: 910 });
    expect(await leases(idle, 'a')).toBe(0);
    // Nothing is left anywhere: the idle worker gets refused too.
    expect(statuses(await burst(idle, '/a', 'skew100', 10))).toEqual({ 429: 10 });
  }, 60_000);

  it('limit 1,000, automatic blocks (31 for 4 workers), skewed → exactly 1,000 of 3,240', async () => {
    const [hot, idle, c, d] = pids as [number, number, number, number];
    const first = await oneByOne(idle, '/b', 'skew1000', 40);
    expect(statuses(first)).toEqual({ 200: 40 });
    expect(await leases(idle, 'b')).toBe(1);
    const [many, fewC, fewD] = await Promise.all([
      burst(hot, '/b', 'skew1000', 3000),
      burst(c, '/b', 'skew1000', 100),
      burst(d, '/b', 'skew1000', 100),
    ]);
    expect(statuses([...many, ...fewC, ...fewD])).toEqual({ 200: 960, 429: 2240 });
    expect(await leases(idle, 'b')).toBe(0);
    expect(statuses(await burst(idle, '/b', 'skew1000', 10))).toEqual({ 429: 10 });
  }, 60_000);

  it('resetKey while two workers hold blocks: once it resolves, exactly 100 again', async () => {
    const [a, b, c, d] = pids as [number, number, number, number];
    expect(statuses(await oneByOne(b, '/a', 'reset', 10))).toEqual({ 200: 10 }); // block at the 8th
    expect(statuses(await oneByOne(c, '/a', 'reset', 3))).toEqual({ 200: 3 }); // busy: a block at once
    expect([await leases(b, 'a'), await leases(c, 'a')]).toEqual([1, 1]);
    const [reset] = await (byWorker.get(a) as ConnectionPool).burst([{ path: '/reset?l=a&key=reset' }]);
    expect((reset as BurstResponse).body).toBe('reset');
    expect([await leases(b, 'a'), await leases(c, 'a')]).toEqual([0, 0]);
    const after = await Promise.all([a, b, c, d].map((pid) => burst(pid, '/a', 'reset', 100)));
    expect(statuses(after.flat())).toEqual({ 200: 100, 429: 300 });
  }, 60_000);

  it('window rollover: a block dies with its window and does not weigh on the next one', async () => {
    const [a, b, c] = pids as [number, number, number];
    const start = Date.now();
    expect(statuses(await oneByOne(b, '/w', 'roll', 10))).toEqual({ 200: 10 });
    expect(await leases(b, 'w')).toBe(1);
    // Window 1 (10 s from the first request): the rest of the limit, with b's block recalled.
    const one = await burst(a, '/w', 'roll', 300);
    expect(Date.now() - start).toBeLessThan(10_000); // still window 1: otherwise the count below means nothing
    expect(statuses(one)).toEqual({ 200: 90, 429: 210 });
    // Window 2: b takes a block again (after 8 decisions), then the window ends with it unused.
    await sleep(Math.max(0, start + 10_100 - Date.now()));
    const start2 = Date.now();
    expect(statuses(await oneByOne(b, '/w', 'roll', 10))).toEqual({ 200: 10 });
    expect(await leases(b, 'w')).toBe(1);
    await sleep(Math.max(0, start2 + 10_100 - Date.now()));
    // Window 3: b's old block is not usable (expired), and does not count: exactly 100.
    const start3 = Date.now();
    const three = await Promise.all([
      burst(a, '/w', 'roll', 150),
      burst(c, '/w', 'roll', 150),
      burst(b, '/w', 'roll', 20),
    ]);
    expect(Date.now() - start3).toBeLessThan(10_000);
    expect(statuses(three.flat())).toEqual({ 200: 100, 429: 220 });
  }, 60_000);

  it('a worker killed while holding a block: the block counts as used, never more than the limit', async () => {
    const [a, b, c, victim] = pids as [number, number, number, number];
    // 8 hub decisions, then a block of 8 of which 2 are used: the hub has counted 16, 10 admitted.
    expect(statuses(await oneByOne(victim, '/a', 'kill', 10))).toEqual({ 200: 10 });
    expect(await leases(victim, 'a')).toBe(1);
    process.kill(victim, 'SIGKILL');
    await waitFor(async () => !(await workers()).some((w) => w.pid === victim), 15_000);
    const rest = await Promise.all([a, b, c].map((pid) => burst(pid, '/a', 'kill', 200)));
    // 100 − 16 = 84 more: the dead worker's 6 unused tokens are lost, not handed out twice.
    expect(statuses(rest.flat())).toEqual({ 200: 84, 429: 516 });
  }, 60_000);
});
