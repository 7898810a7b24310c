/**
 * Micro-benchmark: the outbound HTTP client's cost per call against one local origin.
 * The origin is a node:http server in a worker thread (its own event loop), answering a
 * small JSON body; the calls run 16 at a time, each reading the whole body.
 * MICRO_IMPL=undici:           bare undici request() (its global keep-alive agent);
 * MICRO_IMPL=undici-headers:   the same with the X-Request-Id and traceparent headers the
 *                              perfstack client propagates (what sending them costs);
 * MICRO_IMPL=perfstack:        createClient() with every protection on (retries with
 *                              deadline and budget, breaker, bulkhead, per-attempt timeout,
 *                              active health checks, X-Request-Id and traceparent
 *                              propagation, metrics);
 * MICRO_IMPL=fetch-opossum:    fetch() wrapped in an opossum breaker with axios-retry-style
 *                              retries (3 retries, exponential delay, on network errors and 5xx).
 * Every response is checked (status 200, body `{"ok":true}`). Prints `RESULT {json}`.
 *
 * Driven by client-instructions.js (callgrind instruction counts): MICRO_ORIGIN names an
 * origin in another process (not counted), and MICRO_CONTROL=stdin replaces the timed loop by
 * `MICRO_WARMUP_CALLS` calls, `READY`, then one batch of `MICRO_BATCH` calls per `go` line
 * (`DONE` after each), until `exit`.
 */
import { Worker } from 'node:worker_threads';
import CircuitBreaker from 'opossum';
import { request } from 'undici';
import { requireExports } from '../lib/perfstack.js';

const impl = process.env.MICRO_IMPL;
const durationMs = Number(process.env.MICRO_DURATION_MS ?? 2000);
const warmupMs = Number(process.env.MICRO_WARMUP_MS ?? 500);
const CONCURRENCY = 16;
/** Under valgrind everything runs ~50x slower: client-instructions.js stretches the timeouts. */
const SCALE = Number(process.env.MICRO_TIMEOUT_SCALE ?? 1);
const BODY = '{"ok":true}';
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

const external = process.env.MICRO_ORIGIN;
const origin = external
  ? undefined
  : new Worker(
      `const { createServer } = require('node:http');
   const { parentPort } = require('node:worker_threads');
   const server = createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end('${BODY}'); });
   server.keepAliveTimeout = 60000;
   server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));`,
      { eval: true },
    );
const url =
  external ??
  `http://127.0.0.1:${await new Promise((resolve, reject) => {
    origin.once('message', resolve);
    origin.once('error', reject);
  })}`;

/** @type {() => Promise<string>} */
let call;
let close = async () => {};
if (impl === 'undici') {
  call = async () => {
    const res = await request(`${url}/item`);
    if (res.statusCode !== 200) throw new Error(`undici: status ${res.statusCode}`);
    return res.body.text();
  };
} else if (impl === 'undici-headers') {
  // Bare undici sending the two headers the perfstack client propagates: what sending them costs by itself.
  const headers = { 'x-request-id': 'bench-1', traceparent: TRACEPARENT };
  call = async () => {
    const res = await request(`${url}/item`, { headers });
    if (res.statusCode !== 200) throw new Error(`undici: status ${res.statusCode}`);
    return res.body.text();
  };
} else if (impl === 'perfstack') {
  const { createClient } = await requireExports('@perfstack/circuit-breaker', ['createClient']);
  const client = createClient('bench', {
    origins: [url],
    retry: { maxAttempts: 3, initialDelay: 50, maxDelay: 1000, multiplier: 2, deadline: 5000 * SCALE },
    retryBudget: { ratio: 0.1, minPerSecond: 10 },
    timeout: 3000 * SCALE,
    maxConcurrent: 64,
    maxQueue: 1024,
    breaker: { failureThreshold: 5, resetTimeout: 30_000 },
    // Active health checks (every origin probed every 5 s; the origin answers any path 200).
    // MICRO_HEALTH_INTERVAL_MS (not scaled) makes the probes frequent enough to land between
    // the counted calls under valgrind.
    healthCheck: {
      path: '/health',
      interval: Number(process.env.MICRO_HEALTH_INTERVAL_MS ?? 5000 * SCALE),
      timeout: 2000 * SCALE,
    },
  });
  call = async () => {
    const res = await client.request({ path: '/item', requestId: 'bench-1', traceparent: TRACEPARENT });
    if (res.statusCode !== 200) throw new Error(`perfstack: status ${res.statusCode}`);
    return res.body.text();
  };
  close = () => client.close();
} else if (impl === 'fetch-opossum') {
  const breaker = new CircuitBreaker(
    async () => {
      const res = await fetch(`${url}/item`);
      if (res.status >= 500) throw new Error(`status ${res.status}`);
      return res;
    },
    { timeout: 3000 * SCALE, errorThresholdPercentage: 50, resetTimeout: 30_000 },
  );
  call = async () => {
    for (let retry = 0; ; retry++) {
      try {
        const res = await breaker.fire();
        if (res.status !== 200) throw new Error(`fetch-opossum: status ${res.status}`);
        return await res.text();
      } catch (error) {
        if (retry >= 3 || breaker.opened) throw error;
        await new Promise((resolve) => setTimeout(resolve, 2 ** retry * 100));
      }
    }
  };
} else {
  throw new Error(`MICRO_IMPL must be undici, undici-headers, perfstack or fetch-opossum, got ${impl}`);
}

async function loop(ms) {
  const end = performance.now() + ms;
  let ops = 0;
  const worker = async () => {
    while (performance.now() < end) {
      const body = await call();
      if (body !== BODY) throw new Error(`${impl}: body ${JSON.stringify(body)}, expected ${BODY}`);
      ops++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return ops;
}

/** `count` calls, CONCURRENCY at a time, every body checked. */
async function calls(count) {
  let started = 0;
  const worker = async () => {
    while (started < count) {
      started++;
      const body = await call();
      if (body !== BODY) throw new Error(`${impl}: body ${JSON.stringify(body)}, expected ${BODY}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

if (process.env.MICRO_CONTROL === 'stdin') {
  const { createInterface } = await import('node:readline');
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  await calls(Number(process.env.MICRO_WARMUP_CALLS ?? 2000));
  process.stdout.write('READY\n');
  const batch = Number(process.env.MICRO_BATCH ?? 500);
  for (;;) {
    const { value, done } = await lines.next();
    if (done || value === 'exit') break;
    await calls(batch);
    process.stdout.write('DONE\n');
  }
  await close();
  process.exit(0);
}

await loop(warmupMs);
const cpuBefore = process.cpuUsage();
const start = performance.now();
const ops = await loop(durationMs);
const elapsedMs = performance.now() - start;
const cpu = process.cpuUsage(cpuBefore);
await close();
await origin?.terminate();
const result = {
  ops,
  opsPerSecond: ops / (elapsedMs / 1000),
  nsPerOp: (elapsedMs * 1e6) / ops,
  // Includes the origin worker's CPU (same process): compare the ratios, not the absolute figure.
  cpuMicrosPerOp: (cpu.user + cpu.system) / ops,
  maxRss: process.resourceUsage().maxRSS * 1024,
};
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
process.exit(0);
