/**
 * PM2 cluster mode with four workers and no Redis (issue 16): the real `pm2` CLI (a
 * devDependency) starts fixtures/pm2-app.mjs with `pm2 start <ecosystem> -i 4`, PM2_HOME in
 * a temp directory. PM2's primary is its own daemon: the workers launch and elect the
 * perfstack hub themselves (a detached process on a Unix domain socket).
 *
 * - limit 100 → exactly 100 of 1,000 concurrent requests admitted across the 4 workers;
 * - `/metrics`' request counter equals the requests sent, whichever worker answers;
 * - a tag invalidation on one worker reaches the other three; a rate-limit reset too;
 * - a killed worker is replaced by PM2 and the limits stay exact (the counts live in the hub);
 * - the hub stopped (SIGSTOP): every worker falls back to its share, ceil(100 / 4) = 25;
 * - the hub killed: the workers elect a new one and count exactly again (the election's own
 *   race, several hubs over the dead hub's socket file, is hub-election.test.ts').
 *
 * afterAll runs `pm2 kill` and kills every hub this test saw, pass or fail.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, waitFor } from '../helpers/http.js';
import { type BurstResponse, ConnectionPool, countBy } from './burst.js';

const fixture = fileURLToPath(new URL('./fixtures/pm2-app.mjs', import.meta.url));
const pm2Bin = fileURLToPath(new URL('../../node_modules/pm2/bin/pm2', import.meta.url));

const home = mkdtempSync(join(tmpdir(), 'perfstack-pm2-'));
const controlDir = join(home, 'control');
/** Every hub pid seen: killed in afterAll (they also exit by themselves 2 s after the workers). */
const hubs = new Set<number>();
/** The hub's command line (it names the socket): finds hubs launched while the workers stopped. */
let hubArgs: string | undefined;
let port = 0;
let pool: ConnectionPool | undefined;
let sentToRoot = 0;

// No Redis (CI exports REDIS_URL for the Redis tests): PM2 hands its CLI's environment to the app.
const { REDIS_URL: _redis, ...baseEnv } = process.env;
const env = { ...baseEnv, PM2_HOME: join(home, 'pm2') };

function pm2(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [pm2Bin, ...args], { env, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`pm2 ${args.join(' ')}: ${error.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

interface Probe {
  readonly pid: number;
  readonly entries: number;
  readonly invalidatedAt: number;
  readonly fallback: number;
  /** Blocks of leased quota the worker holds (the `/leased` limiter). */
  readonly leases: number;
}

/** Every live worker's probe (through its private control port). */
async function probes(): Promise<Probe[]> {
  const out: Probe[] = [];
  for (const file of readdirSync(controlDir)) {
    let control: number;
    try {
      ({ port: control } = JSON.parse(readFileSync(join(controlDir, file), 'utf8')) as { port: number });
    } catch {
      continue; // a worker still writing its file: read on the next poll
    }
    try {
      out.push((await request(`http://127.0.0.1:${control}/probe`)).json<Probe>());
    } catch {
      rmSync(join(controlDir, file), { force: true }); // a worker that died
    }
  }
  return out.sort((a, b) => a.pid - b.pid);
}

interface ClusterCheck {
  status: string;
  workers?: number;
  hubPid?: number;
  worker?: unknown;
  transport?: string;
}

/** A process's command line (Linux /proc), or undefined. */
function hubCommandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
}

/** Hubs for this test's socket still running (one a worker launched while PM2 stopped it, say). */
function strayHubs(): number[] {
  if (hubArgs === undefined) return [];
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (hubCommandLine(Number(entry)) === hubArgs) found.push(Number(entry));
  }
  return found;
}

async function cluster(): Promise<ClusterCheck> {
  const health = (await request(`http://127.0.0.1:${port}/health`)).json<{ checks: { cluster: ClusterCheck } }>();
  const check = health.checks.cluster;
  if (typeof check.hubPid === 'number' && !hubs.has(check.hubPid)) {
    hubs.add(check.hubPid);
    hubArgs ??= hubCommandLine(check.hubPid);
  }
  return check;
}

/** Sum of `http_requests_total` for `/` (route `/`, plus the 429s, answered before routing: `unmatched`). */
async function scrape(): Promise<{ total: number; status: number }> {
  const res = await request(`http://127.0.0.1:${port}/metrics`);
  let total = 0;
  for (const match of res.text.matchAll(/^http_requests_total\{([^}]*)\} (\d+)$/gm)) {
    const labels = match[1] as string;
    if (labels.includes('route="/"') || (labels.includes('route="unmatched"') && labels.includes('status_code="429"')))
      total += Number(match[2]);
  }
  return { total, status: res.status };
}

const burst = async (client: string, n: number): Promise<BurstResponse[]> => {
  const responses = await (pool as ConnectionPool).burst(
    Array.from({ length: n }, () => ({ path: '/', headers: { 'x-client': client } })),
  );
  sentToRoot += n;
  return responses;
};

/** Admitted per worker (each answers `/` with its pid). */
const admittedBy = (responses: readonly BurstResponse[]) =>
  countBy(
    responses.filter((r) => r.status === 200),
    (r) => r.body,
  );

beforeAll(async () => {
  mkdirSync(controlDir);
  const ecosystem = join(home, 'ecosystem.config.cjs');
  writeFileSync(
    ecosystem,
    `module.exports = ${JSON.stringify({
      apps: [
        {
          name: 'perfstack-pm2-test',
          script: fixture,
          exec_mode: 'cluster',
          instances: 4, // `-i 4` on the command line does not override an ecosystem file
          kill_timeout: 2000,
          env: { CONTROL_DIR: controlDir, PERFSTACK_CLUSTER_HUB_IDLE: '2000' },
        },
      ],
    })};\n`,
  );
  await pm2('start', ecosystem);
  await waitFor(async () => (await probes()).length === 4, 60_000, 100);
  const first = readdirSync(controlDir)[0] as string;
  port = (JSON.parse(readFileSync(join(controlDir, first), 'utf8')) as { app: number }).app;
  await waitFor(async () => {
    const check = await cluster();
    return check.status === 'ok' && check.workers === 4;
  }, 30_000);
  pool = await ConnectionPool.open([port], 500);
}, 90_000);

afterAll(async () => {
  pool?.close();
  await pm2('kill').catch(() => {});
  for (const pid of [...hubs, ...strayHubs()]) {
    try {
      process.kill(pid, 'SIGCONT');
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (!process.env.KEEP_PM2_HOME) rmSync(home, { recursive: true, force: true });
}, 40_000);

describe('PM2 cluster mode, 4 workers, no Redis', () => {
  it('limit 100 → exactly 100 of 1,000 concurrent requests admitted, across the workers', async () => {
    expect(readdirSync(controlDir)).toHaveLength(4);
    const responses = await burst('one', 1000);
    expect(countBy(responses, (r) => r.status)).toEqual({ 200: 100, 429: 900 });
    // Admitted by several workers, so the count is shared, not one worker's. Which workers win
    // the first 100 of a concurrent burst depends on scheduling: all four is usual, not certain.
    expect(Object.keys(admittedBy(responses)).length).toBeGreaterThanOrEqual(2);
    const check = await cluster();
    expect(check).toMatchObject({ status: 'ok', transport: 'hub', workers: 4 });
    expect(hubs.size).toBe(1);
  });

  it('leased quota over the hub socket: workers hold blocks far from the limit, and the fleet admits exactly 1,000', async () => {
    const leased = (n: number) =>
      (pool as ConnectionPool).burst(
        Array.from({ length: n }, () => ({ path: '/leased', headers: { 'x-client': 'L' } })),
      );
    expect(countBy(await leased(500), (r) => r.status)).toEqual({ 200: 500 });
    // 500 left, far above the reserve (4 workers × 8): the busy workers decide from blocks.
    const held = (await probes()).reduce((sum, p) => sum + p.leases, 0);
    expect(held).toBeGreaterThanOrEqual(1);
    const rest = await leased(2500);
    expect(countBy(rest, (r) => r.status)).toEqual({ 200: 500, 429: 2000 });
    // At the limit every block was recalled.
    expect((await probes()).map((p) => p.leases)).toEqual([0, 0, 0, 0]);
  });

  it('/metrics: the request counter equals the requests sent, whichever worker answers the scrape', async () => {
    const more = await (pool as ConnectionPool).burst(
      Array.from({ length: 200 }, (_, i) => ({ path: '/', headers: { 'x-client': `m${i}` } })),
    );
    sentToRoot += 200;
    expect(countBy(more, (r) => r.status)).toEqual({ 200: 200 });
    // Fresh connections: PM2's round robin hands each to the next worker.
    for (let i = 0; i < 8; i++) expect(await scrape()).toEqual({ total: sentToRoot, status: 200 });
  });

  it('a tag invalidation on one worker reaches the other three; a rate-limit reset too', async () => {
    await waitFor(
      async () => {
        await request(`http://127.0.0.1:${port}/products`);
        return (await probes()).every((p) => p.entries >= 1);
      },
      30_000,
      0,
    );
    const res = await request(`http://127.0.0.1:${port}/products/invalidate`, { method: 'POST' });
    expect(res.status).toBe(200);
    const { pid, at } = res.json<{ pid: number; at: number }>();
    let seen: Probe[] = [];
    await waitFor(async () => {
      seen = await probes();
      return seen.filter((p) => p.pid !== pid).every((p) => p.invalidatedAt >= at);
    }, 30_000);
    expect(seen).toHaveLength(4);
    for (const p of seen) expect(p.entries, `worker ${p.pid}`).toBe(0);

    // `one` is at its limit; a reset on any worker frees it on all.
    const reset = await request(`http://127.0.0.1:${port}/reset`, {
      method: 'POST',
      headers: { 'x-client': 'admin', 'x-reset': 'one' },
    });
    expect(reset.status).toBe(200);
    const after = await burst('one', 400);
    expect(countBy(after, (r) => r.status)).toEqual({ 200: 100, 429: 300 });
  });

  it('a killed worker is replaced by PM2; the limits stay exact and /metrics does not go back', async () => {
    const half = await burst('kill', 50);
    expect(countBy(half, (r) => r.status)).toEqual({ 200: 50 });
    expect((await scrape()).total).toBe(sentToRoot); // gathers every worker (kept for one that dies)
    const victim = (await probes())[0] as Probe;
    process.kill(victim.pid, 'SIGKILL');
    await waitFor(
      async () => {
        const now = await probes();
        return now.length === 4 && !now.some((p) => p.pid === victim.pid);
      },
      30_000,
      100,
    );
    await waitFor(async () => (await cluster()).workers === 4, 30_000);
    pool?.close();
    pool = await ConnectionPool.open([port], 500);
    const rest = await burst('kill', 500);
    // 50 before the kill + 50 after = exactly the limit: the counts live in the hub, not a worker.
    expect(countBy(rest, (r) => r.status)).toEqual({ 200: 50, 429: 450 });
    expect(Object.keys(admittedBy(rest))).not.toContain(String(victim.pid));
    expect(hubs.size).toBe(1);
    for (let i = 0; i < 4; i++) expect(await scrape()).toEqual({ total: sentToRoot, status: 200 });
  }, 90_000);

  it('the hub stops answering (SIGSTOP): each worker admits its share, ceil(100 / 4) = 25', async () => {
    const hub = [...hubs][0] as number;
    process.kill(hub, 'SIGSTOP');
    try {
      // 125 requests per worker (the pool's connections are spread evenly over the four).
      const responses = await burst('stalled', 500);
      expect(Object.values(admittedBy(responses))).toEqual([25, 25, 25, 25]);
      expect(countBy(responses, (r) => r.status)).toEqual({ 200: 100, 429: 400 });
      for (const p of await probes()) expect(p.fallback, `worker ${p.pid}`).toBeGreaterThan(0);
    } finally {
      process.kill(hub, 'SIGCONT');
    }
  }, 90_000);

  it('the hub is killed: the workers elect a new one and count exactly again', async () => {
    const old = [...hubs][0] as number;
    process.kill(old, 'SIGKILL');
    // Every worker (each /health goes to whichever worker PM2 picks) must have rejoined the
    // new hub: one that has not yet reconnected still decides locally, at its share.
    const rejoined = new Set<unknown>();
    await waitFor(async () => {
      const check = await cluster();
      if (check.status === 'ok' && check.workers === 4 && check.hubPid !== old) rejoined.add(check.worker);
      return rejoined.size === 4;
    }, 30_000);
    const hubPids = [...hubs].filter((pid) => pid !== old);
    expect(hubPids).toHaveLength(1);
    const before = await probes();
    const responses = await burst('after-election', 500);
    // On failure: which workers decided locally during the burst (their fallback count grew),
    // and which hub answers now (a second hub means the election split the workers).
    const after = await probes();
    const why = JSON.stringify({
      admitted: admittedBy(responses),
      fallback: after.map((p) => [p.pid, p.fallback - (before.find((b) => b.pid === p.pid)?.fallback ?? 0)]),
      hubNow: (await cluster()).hubPid,
      hubs: [...hubs],
    });
    expect(
      countBy(responses, (r) => r.status),
      why,
    ).toEqual({ 200: 100, 429: 400 });
  }, 90_000);
});
