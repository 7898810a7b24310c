/**
 * Micro-benchmark without HTTP: the outbound breaker's per-call cost.
 * MICRO_IMPL=perfstack: @perfstack/circuit-breaker createBreaker().execute(fn);
 * MICRO_IMPL=opossum:   new CircuitBreaker(fn).fire().
 * Both with a 3 s timeout (the per-call timer is part of what a real breaker costs),
 * calls awaited one after another. Warm-up discarded; prints `RESULT {json}`.
 */
import CircuitBreaker from 'opossum';
import { requireExports } from '../lib/perfstack.js';

const impl = process.env.MICRO_IMPL;
const durationMs = Number(process.env.MICRO_DURATION_MS ?? 2000);
const warmupMs = Number(process.env.MICRO_WARMUP_MS ?? 500);
const VALUE = 42;
const task = () => Promise.resolve(VALUE);

let call;
if (impl === 'opossum') {
  const breaker = new CircuitBreaker(task, { timeout: 3000, errorThresholdPercentage: 50, resetTimeout: 30_000 });
  call = () => breaker.fire();
} else if (impl === 'perfstack') {
  const { createBreaker } = await requireExports('@perfstack/circuit-breaker', ['createBreaker']);
  const breaker = createBreaker({ timeout: 3000 });
  if (typeof breaker?.execute !== 'function') {
    process.stdout.write('UNAVAILABLE createBreaker() returned no execute()\n');
    process.exit(3);
  }
  call = () => breaker.execute(task);
} else {
  throw new Error(`MICRO_IMPL must be perfstack or opossum, got ${impl}`);
}

async function loop(ms) {
  const end = performance.now() + ms;
  let ops = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 256; i++) {
      const value = await call();
      if (value !== VALUE) throw new Error(`${impl}: call returned ${value}, expected ${VALUE}`);
    }
    ops += 256;
  }
  return ops;
}

await loop(warmupMs);
const cpuBefore = process.cpuUsage();
const start = performance.now();
const ops = await loop(durationMs);
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
