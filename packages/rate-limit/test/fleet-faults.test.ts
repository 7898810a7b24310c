/**
 * Issue 16's proof for a fleet sharing Redis, with real processes and a real (private)
 * redis-server that the test may pause (SIGSTOP) — never the shared one.
 *
 * Three instance processes (fixtures/fleet-faults-server.mjs, on the built packages), limit
 * 100 per client:
 * - 10 × 2,000 concurrent requests from three clients while CPU-hog processes load the same
 *   cores: exactly 100 admitted per client every time (timeouts are measured in loop time,
 *   so overloaded instances do not blame a healthy Redis and fall back).
 * - Redis paused 1.5 s mid-burst (after the first of ten waves): per client at most the documented bound
 *   `limit + liveInstances × ceil(limit / liveInstances)`, `/health` degraded on every
 *   instance during the pause, no request over 2 s, and counting resumes in Redis.
 * - `failOpen: false`, same stall: requests are held (storeWait 2 s), so every request is
 *   decided exactly by Redis — none refused with 503.
 *
 * 2,000 persistent connections are opened once and reused by every repetition (one request
 * each per burst), which keeps the file short: the cost is the requests, not set-ups.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, waitFor } from '../../../test/helpers/http.js';
import { type RedisServerHandle, startRedisServer, uniquePrefix } from '../../../test/helpers/redis.js';
import { type BurstResponse, ConnectionPool, countBy } from '../../../test/reliability/burst.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/fleet-faults-server.mjs', import.meta.url));
const INSTANCES = 3;
const LIMIT = 100;
const BURST = 2000;
/** README "Failure policy": per client and window, Redis's limit plus every instance's local share. */
const BOUND = LIMIT + INSTANCES * Math.ceil(LIMIT / INSTANCES);

const children: ChildProcess[] = [];
const hogs: ChildProcess[] = [];
const ports: number[] = [];
let redis: RedisServerHandle;
let pool: ConnectionPool;

function spawnInstance(env: Record<string, string>): Promise<number> {
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  return new Promise<number>((resolve, reject) => {
    let buffer = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const nl = buffer.indexOf('\n');
      if (nl !== -1) resolve((JSON.parse(buffer.slice(0, nl)) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`instance exited with ${code}`)));
  });
}

function startHogs(count: number): void {
  for (let i = 0; i < count; i++) {
    hogs.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
  }
}

function stopHogs(): void {
  for (const hog of hogs.splice(0)) hog.kill('SIGKILL');
}

const health = async (port: number) =>
  (await request(`http://127.0.0.1:${port}/health`, { timeout: 5000 })).json<{
    status: string;
    checks: { redis: { status: string; liveInstances: number } };
  }>();

/** `count` requests to `path`, client `clients[i % clients.length]` for request i. */
const requests = (path: string, clients: readonly string[], count = BURST) =>
  Array.from({ length: count }, (_, i) => ({ path, headers: { 'x-client': clients[i % clients.length] as string } }));

const admitted = (responses: readonly BurstResponse[], clients: readonly string[]) => {
  const out: Record<string, number> = {};
  responses.forEach((r, i) => {
    const client = clients[i % clients.length] as string;
    out[client] = (out[client] ?? 0) + (r.status === 200 ? 1 : 0);
  });
  return out;
};

/**
 * A 2,000-request burst in 10 waves of 200, 150 ms apart; once the first wave is answered,
 * Redis is paused (SIGSTOP) for 1.5 s — the other nine waves arrive during the stall — then
 * resumed (SIGCONT). `/health` of every instance is polled during the pause.
 */
async function burstWithStall(path: string, clients: readonly string[]) {
  const all = requests(path, clients);
  const wave = BURST / 10;
  const first = await pool.burst(all.slice(0, wave), 0);
  redis.pause();
  const pausedAt = Date.now();
  const degraded = new Set<number>();
  const waves: Array<Promise<BurstResponse[]>> = [];
  const poll = async () => {
    while (Date.now() - pausedAt < 1500) {
      await Promise.all(
        ports.map(async (port) => {
          const h = await health(port);
          if (h.status === 'degraded' && h.checks.redis.status !== 'up') degraded.add(port);
        }),
      );
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    const polling = poll();
    for (let w = 1; w < 10; w++) {
      waves.push(pool.burst(all.slice(w * wave, (w + 1) * wave), w * wave));
      await new Promise((r) => setTimeout(r, 150));
    }
    await polling;
  } finally {
    redis.resume();
  }
  return { responses: [...first, ...(await Promise.all(waves)).flat()], degraded };
}

beforeAll(async () => {
  execFileSync('npx', ['tsc', '-b', 'packages/rate-limit', 'packages/dashboard'], { cwd: root, stdio: 'ignore' });
  redis = await startRedisServer();
  const prefix = uniquePrefix('faults');
  for (let i = 0; i < INSTANCES; i++) {
    ports.push(
      await spawnInstance({ REDIS_URL: redis.url, KEY_PREFIX: prefix, HEARTBEAT: '250', INSTANCE_ID: `instance-${i}` }),
    );
  }
  // Every instance has counted the fleet (its local share is ceil(100 / 3) = 34).
  await waitFor(
    async () => (await Promise.all(ports.map(health))).every((h) => h.checks.redis.liveInstances === 3),
    10_000,
  );
  pool = await ConnectionPool.open(ports, BURST);
}, 60_000);

afterAll(async () => {
  stopHogs();
  pool?.close();
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
        }),
    ),
  );
  await redis?.stop();
});

describe('three instances on one Redis, limit 100 per client', () => {
  it('10 × 2,000 concurrent requests from three clients, CPU hogs on the same cores: exactly 100 per client every time', async () => {
    startHogs(2);
    try {
      for (let round = 0; round < 10; round++) {
        const clients = [0, 1, 2].map((c) => `round${round}-client${c}`);
        const responses = await pool.burst(requests('/', clients));
        expect(
          countBy(responses, (r) => r.status),
          `round ${round}`,
        ).toEqual({ 200: 300, 429: BURST - 300 });
        expect(admitted(responses, clients), `round ${round}`).toEqual(
          Object.fromEntries(clients.map((c) => [c, 100])),
        );
        // Every instance took part.
        expect(Object.keys(countBy(responses, (r) => r.port))).toHaveLength(3);
      }
    } finally {
      stopHogs();
    }
    // No instance ever fell back to its local limiter: Redis was never blamed.
    for (const h of await Promise.all(ports.map(health))) expect(h.status).toBe('ok');
  }, 150_000);

  it(`Redis paused 1.5 s mid-burst: ≤ ${BOUND} per client, /health degraded on every instance, no request over 2 s, counting resumes in Redis`, async () => {
    const clients = ['pause-a', 'pause-b', 'pause-c'];
    const { responses, degraded } = await burstWithStall('/', clients);
    expect(countBy(responses, (r) => (r.status === 200 || r.status === 429 ? 'decided' : r.status))).toEqual({
      decided: BURST,
    });
    for (const [client, n] of Object.entries(admitted(responses, clients))) {
      expect(n, client).toBeGreaterThanOrEqual(LIMIT);
      expect(n, client).toBeLessThanOrEqual(BOUND);
    }
    if (process.env.FLEET_FAULTS_REPORT) {
      console.log(
        'pause: admitted',
        admitted(responses, clients),
        'by port',
        countBy(
          responses.filter((r) => r.status === 200),
          (r) => r.port,
        ),
        'max ms',
        Math.max(...responses.map((r) => r.ms)),
      );
    }
    expect(Math.max(...responses.map((r) => r.ms))).toBeLessThan(2000);
    expect([...degraded].sort()).toEqual([...ports].sort());
    // Redis answers again: every instance says so...
    await waitFor(async () => (await Promise.all(ports.map(health))).every((h) => h.status === 'ok'), 10_000);
    // ...and a new client is counted in Redis: exactly 100 across the fleet (three local
    // shares would admit 3 × 34 = 102).
    const after = await pool.burst(requests('/', ['after-pause'], 600));
    expect(countBy(after, (r) => r.status)).toEqual({ 200: 100, 429: 500 });
  }, 30_000);

  it('failOpen: false, Redis paused 1.5 s mid-burst: requests are held (storeWait 2 s), none refused, exactly 100 per client', async () => {
    const clients = ['closed-a', 'closed-b', 'closed-c'];
    const { responses } = await burstWithStall('/closed', clients);
    // Any 503 would have had to wait the documented storeWait first.
    for (const r of responses) if (r.status === 503) expect(r.ms).toBeGreaterThanOrEqual(1950);
    expect(countBy(responses, (r) => r.status)).toEqual({ 200: 300, 429: BURST - 300 });
    expect(admitted(responses, clients)).toEqual({ 'closed-a': 100, 'closed-b': 100, 'closed-c': 100 });
  }, 30_000);
});
