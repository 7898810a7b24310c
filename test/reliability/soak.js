// Soak: `pnpm soak [-- --minutes 10 --rate 100 --no-redis]`. Not part of `vitest run`.
//
// Runs the full-stack fixture server (test/reliability/fixtures/stack-server.mjs, built
// packages, a private redis-server unless --no-redis) in a child process with --expose-gc,
// and sends a steady rate of requests over a keep-alive agent, mixing cache hits, cache
// misses, 413s, 429s and an open breaker (503 CIRCUIT_OPEN). Every minute it prints the
// status counts, p50/p99 latency, the child's live heap (after a full GC), RSS and open
// file descriptors (/proc/<pid>/fd). At the end it prints the heap slope (least squares
// over the per-minute samples, MB/min) and a JSON summary, and exits 1 on any unexpected
// answer (a status outside the mix, a network error or a request that timed out).
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '100' },
    'no-redis': { type: 'boolean', default: false },
    'sample-seconds': { type: 'string', default: '60' },
  },
});
const minutes = Number(values.minutes);
const rate = Number(values.rate);
const sampleMs = Number(values['sample-seconds']) * 1000;
if (!(minutes > 0) || !(rate > 0) || !(sampleMs > 0)) {
  console.error('usage: node test/reliability/soak.js [--minutes N] [--rate RPS] [--no-redis] [--sample-seconds S]');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function startRedis() {
  if (values['no-redis']) return undefined;
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.log('redis-server not found: soaking in memory mode');
    return undefined;
  }
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return { child, url: `redis://127.0.0.1:${port}` };
    await sleep(25);
  }
  throw new Error('redis-server did not start');
}

const redis = await startRedis();
const server = spawn(
  process.execPath,
  ['--expose-gc', fileURLToPath(new URL('./fixtures/stack-server.mjs', import.meta.url))],
  {
    env: { ...process.env, PORT: '0', REDIS_URL: redis?.url ?? '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);
const { port, pid } = await new Promise((resolve, reject) => {
  server.once('exit', (code) => reject(new Error(`server exited early with ${code}`)));
  server.stdout.once('data', (line) => resolve(JSON.parse(String(line))));
});
let serverExit;
server.once('exit', (code, signal) => {
  serverExit = { code, signal };
});

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const big = JSON.stringify({ data: 'x'.repeat(4096) });

/** The mix: [weight, method, path(), body, expected statuses]. */
let missCounter = 0;
const MIX = [
  [45, 'GET', () => '/hit', undefined, [200]],
  // 3000 keys with a 10 s TTL, revisited every ~2 minutes: always a miss, and the L1 cache
  // reaches its steady size within the first minutes, so the heap slope after that is a leak test.
  [20, 'GET', () => `/miss/${missCounter++ % 3000}`, undefined, [200]],
  [5, 'POST', () => '/upload', big, [413]],
  [5, 'POST', () => '/upload', '{"small":true}', [200]],
  [15, 'GET', () => '/limited', undefined, [200, 429]],
  [10, 'GET', () => '/flaky', undefined, [500, 503]],
];
const totalWeight = MIX.reduce((n, m) => n + m[0], 0);
function pick() {
  let r = Math.random() * totalWeight;
  for (const m of MIX) {
    r -= m[0];
    if (r < 0) return m;
  }
  return MIX[0];
}

let keepAliveRetries = 0;

/**
 * One request. A request that fails with ECONNRESET on a reused keep-alive socket before any
 * answer is the client/server keep-alive race (the server closed an idle socket as the agent
 * reused it): Node's docs say to retry it (`req.reusedSocket`), so it is retried once and
 * counted in `keepAliveRetries`, not as a failure.
 */
function send(entry, retried = false) {
  const [, method, path, body, expected] = entry;
  const started = performance.now();
  const target = typeof path === 'function' ? path() : path;
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: target,
        method,
        agent,
        timeout: 10_000,
        headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {},
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          const xcache = res.headers['x-cache'];
          const problem = res.headers['content-type']?.includes('problem') ? 'problem' : 'other';
          const code =
            res.statusCode === 503 ? `503:${problem}` : xcache ? `${res.statusCode}:${xcache}` : res.statusCode;
          resolve({
            status: res.statusCode,
            code,
            ok: expected.includes(res.statusCode),
            ms: performance.now() - started,
          });
        });
        res.on('error', () =>
          resolve({ status: 0, code: `res-error ${target}`, ok: false, ms: performance.now() - started }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => {
      if (!retried && req.reusedSocket && error.code === 'ECONNRESET') {
        keepAliveRetries++;
        send([entry[0], method, target, body, expected], true).then(resolve);
        return;
      }
      resolve({
        status: 0,
        code: `error:${error.code ?? error.message} ${method} ${target}`,
        ok: false,
        ms: performance.now() - started,
      });
    });
    req.end(body);
  });
}

function getJson(path) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => resolve(JSON.parse(text)));
      })
      .on('error', reject);
  });
}

function fdCount() {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function slope(points) {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

const MB = 1024 * 1024;
const start = Date.now();
const baseline = await getJson('/__stats');
const samples = [{ minute: 0, heapMB: baseline.heapUsed / MB, rssMB: baseline.rss / MB, fds: fdCount() }];
console.log(
  `soak: ${minutes} min at ${rate} req/s against pid ${pid} (port ${port}, ${redis ? `redis ${redis.url}` : 'memory mode'}); baseline heap ${samples[0].heapMB.toFixed(1)} MB, rss ${samples[0].rssMB.toFixed(1)} MB, fds ${samples[0].fds}`,
);

let period = { latencies: [], statuses: {}, unexpected: 0 };
const totals = { requests: 0, statuses: {}, unexpected: 0, unexpectedExamples: [] };
const rows = [];
let inFlight = 0;
let skipped = 0;
const tickMs = 20;
let carry = 0;
const deadline = start + minutes * 60_000;
let nextSample = start + sampleMs;

while (Date.now() < deadline && serverExit === undefined) {
  carry += (rate * tickMs) / 1000;
  const n = Math.floor(carry);
  carry -= n;
  for (let i = 0; i < n; i++) {
    if (inFlight >= 256) {
      skipped++;
      continue;
    }
    inFlight++;
    send(pick()).then((r) => {
      inFlight--;
      period.latencies.push(r.ms);
      period.statuses[r.code] = (period.statuses[r.code] ?? 0) + 1;
      totals.statuses[r.code] = (totals.statuses[r.code] ?? 0) + 1;
      totals.requests++;
      if (!r.ok) {
        period.unexpected++;
        totals.unexpected++;
        if (totals.unexpectedExamples.length < 10) totals.unexpectedExamples.push(r.code);
      }
    });
  }
  await sleep(tickMs);
  if (Date.now() >= nextSample) {
    nextSample += sampleMs;
    const stats = await getJson('/__stats');
    const lat = period.latencies.sort((a, b) => a - b);
    const row = {
      minute: Number(((Date.now() - start) / 60_000).toFixed(2)),
      requests: lat.length,
      p50ms: Number(percentile(lat, 50).toFixed(1)),
      p99ms: Number(percentile(lat, 99).toFixed(1)),
      heapMB: Number((stats.heapUsed / MB).toFixed(2)),
      rssMB: Number((stats.rss / MB).toFixed(1)),
      fds: fdCount(),
      cacheEntries: stats.cacheEntries,
      limiterKeys: stats.limiterKeys,
      unexpected: period.unexpected,
      statuses: period.statuses,
    };
    rows.push(row);
    samples.push({ minute: row.minute, heapMB: row.heapMB, rssMB: row.rssMB, fds: row.fds });
    console.log(JSON.stringify(row));
    period = { latencies: [], statuses: {}, unexpected: 0 };
  }
}
while (inFlight > 0) await sleep(20);
agent.destroy();

const heapSlope = slope(samples.map((s) => [s.minute, s.heapMB]));
// Slope over the second half only: warm-up (JIT, caches filling to their steady size) excluded.
const half = samples.filter((s) => s.minute >= minutes / 2);
const summary = {
  minutes,
  rate,
  redis: Boolean(redis),
  requests: totals.requests,
  skipped,
  keepAliveRetries,
  statuses: totals.statuses,
  unexpected: totals.unexpected,
  unexpectedExamples: totals.unexpectedExamples,
  heapSlopeMBPerMin: Number(heapSlope.toFixed(3)),
  heapSlopeSecondHalfMBPerMin: Number(slope(half.map((s) => [s.minute, s.heapMB])).toFixed(3)),
  heapMB: { first: samples[0].heapMB, last: samples.at(-1).heapMB, max: Math.max(...samples.map((s) => s.heapMB)) },
  fds: { first: samples[0].fds, last: samples.at(-1).fds, max: Math.max(...samples.map((s) => s.fds)) },
  p99msPerMinute: rows.map((r) => r.p99ms),
  serverExit: serverExit ?? null,
};

server.kill('SIGTERM');
const exit = await new Promise((resolve) => {
  if (serverExit) resolve(serverExit);
  else server.once('exit', (code, signal) => resolve({ code, signal }));
});
summary.shutdown = exit;
redis?.child.kill('SIGTERM');
console.log(`summary ${JSON.stringify(summary, null, 2)}`);
const failed = totals.unexpected > 0 || summary.serverExit !== null || exit.code !== 0;
process.exit(failed ? 1 : 0);
