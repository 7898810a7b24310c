/**
 * Micro-benchmark without HTTP: what the adaptive concurrency limiter (issue 19, item 3) adds
 * to a request that is not shed. A simulated server keeps 16 requests in flight; each op
 * admits one and finishes the oldest.
 * MICRO_IMPL=adaptive: the limiter's whole per-request work, as the middleware does it: a
 *   high-resolution timestamp and `tryAcquire()` on admission, a timestamp and `complete()`
 *   (the Vegas update once per window) on finish. `minLimit: 32` keeps it from shedding, so
 *   this is the not-shedding path; a shed would fail the run.
 * MICRO_IMPL=none: the same simulated server without the limiter.
 * The limiter's cost per request is nsPerOp(adaptive) − nsPerOp(none). Prints `RESULT {json}`.
 */
import { requireExports } from '../lib/perfstack.js';

const impl = process.env.MICRO_IMPL;
const durationMs = Number(process.env.MICRO_DURATION_MS ?? 2000);
const warmupMs = Number(process.env.MICRO_WARMUP_MS ?? 500);
const INFLIGHT = 16;

let admit;
let finish;
if (impl === 'adaptive') {
  const { ConcurrencyLimiter } = await requireExports('@perfstack/circuit-breaker', ['ConcurrencyLimiter']);
  const limiter = ConcurrencyLimiter.create('bench', { minLimit: 32 });
  admit = (slot) => {
    if (!limiter.tryAcquire())
      throw new Error('adaptive: the limiter shed a request; the benchmark measures the not-shedding path');
    slot.startedAt = performance.now();
    slot.inflight = limiter.inflight;
  };
  finish = (slot) => limiter.complete(slot.startedAt, slot.inflight, performance.now(), false);
} else if (impl === 'none') {
  admit = (slot) => {
    slot.startedAt = 0;
    slot.inflight = 0;
  };
  finish = () => {};
} else {
  throw new Error(`MICRO_IMPL must be adaptive or none, got ${impl}`);
}

const ring = Array.from({ length: INFLIGHT }, () => ({ startedAt: 0, inflight: 0 }));
for (const slot of ring) admit(slot);
let cursor = 0;

function loop(ms) {
  const end = performance.now() + ms;
  let ops = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 1024; i++) {
      const slot = ring[cursor];
      finish(slot);
      admit(slot);
      cursor = (cursor + 1) % INFLIGHT;
    }
    ops += 1024;
  }
  return ops;
}

loop(warmupMs);
const cpuBefore = process.cpuUsage();
const start = performance.now();
const ops = loop(durationMs);
const elapsedMs = performance.now() - start;
const cpu = process.cpuUsage(cpuBefore);
const result = {
  ops,
  opsPerSecond: ops / (elapsedMs / 1000),
  nsPerOp: (elapsedMs * 1e6) / ops,
  cpuMicrosPerOp: (cpu.user + cpu.system) / ops,
  maxRss: process.resourceUsage().maxRSS * 1024,
};
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
process.exit(0);
