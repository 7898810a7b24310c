/**
 * `pnpm bench:construct`: what building one `performanceStack()` costs.
 *
 * Test suites that build an app (and so a stack) per test pay this thousands of times. The
 * first build (module warm-up, JIT) is reported apart and discarded; then `--runs` builds
 * (default 200), each followed by `close()`, and the median, p90 and minimum in ms. Each
 * layer is also built alone with its own registry, so a regression points at its layer.
 *
 * The stack is built at its defaults except the log destination (a no-op stream, so nothing
 * is written to stdout) and `env: false` (the figure must not depend on the shell).
 *
 *   node benchmarks/construct.js [--runs 200] [--json]
 */
import { Writable } from 'node:stream';
import { responseCache } from '@perfstack/cache';
import { circuitBreaker } from '@perfstack/circuit-breaker';
import { createRegistry } from '@perfstack/core';
import { accessLog } from '@perfstack/logger';
import { rateLimit } from '@perfstack/rate-limit';
import { sizeLimit } from '@perfstack/size-limit';
import { timing } from '@perfstack/timing';
import { performanceStack } from 'perfstack';

const args = process.argv.slice(2);
const runsAt = args.indexOf('--runs');
const runs = runsAt >= 0 ? Number(args[runsAt + 1]) : 200;
if (!Number.isInteger(runs) || runs < 1)
  throw new RangeError(`--runs must be a positive integer, got ${args[runsAt + 1]}`);
const json = args.includes('--json');

const sink = () =>
  new Writable({
    write(_chunk, _encoding, callback) {
      callback();
    },
  });

/** What is built, by name: the whole stack, then each layer alone. */
const subjects = {
  performanceStack: () => performanceStack({ env: false, logger: { destination: sink() } }),
  timing: () => timing({ registry: createRegistry() }),
  cache: () => responseCache({ registry: createRegistry() }),
  sizeLimit: () => sizeLimit({ registry: createRegistry() }),
  logger: () => accessLog({ destination: sink() }),
  rateLimit: () => rateLimit({ registry: createRegistry() }),
  circuitBreaker: () => circuitBreaker({ registry: createRegistry() }),
};

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

const results = {};
for (const [name, build] of Object.entries(subjects)) {
  let start = performance.now();
  await build().close();
  const first = performance.now() - start;
  const times = [];
  for (let i = 0; i < runs; i++) {
    start = performance.now();
    const built = build();
    times.push(performance.now() - start);
    await built.close();
  }
  times.sort((a, b) => a - b);
  results[name] = {
    firstMs: first,
    medianMs: quantile(times, 0.5),
    p90Ms: quantile(times, 0.9),
    minMs: times[0],
    runs,
  };
}

if (json) {
  console.log(JSON.stringify(results, null, 2));
} else {
  console.log(`construction cost, ${runs} builds each after one discarded (node ${process.version})`);
  console.log('subject            median ms   p90 ms   min ms   first ms');
  for (const [name, r] of Object.entries(results)) {
    console.log(
      `${name.padEnd(18)} ${r.medianMs.toFixed(3).padStart(9)} ${r.p90Ms.toFixed(3).padStart(8)} ${r.minMs.toFixed(3).padStart(8)} ${r.firstMs.toFixed(1).padStart(10)}`,
    );
  }
  console.log(`\nperformanceStack() median: ${results.performanceStack.medianMs.toFixed(2)} ms (target < 3 ms)`);
}
