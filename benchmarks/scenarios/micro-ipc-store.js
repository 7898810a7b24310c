/**
 * Micro-benchmark without HTTP: the per-request cost of the rate limiter's `node:cluster`
 * store (issue 16). MICRO_IMPL=cluster: a real primary (`clusterPrimary()`) and one worker
 * whose `ClusterStore.decide()` calls travel over the IPC channel, batched per loop turn,
 * 64 in flight at a time (as concurrent requests would be). MICRO_IMPL=memory: the same
 * decisions on a local `MemoryStore` (the single-process baseline). Distinct keys, limit
 * high enough that every call is allowed. Warm-up discarded; prints `RESULT {json}`.
 */
import cluster from 'node:cluster';
import { requireExports } from '../lib/perfstack.js';

const impl = process.env.MICRO_IMPL;
const durationMs = Number(process.env.MICRO_DURATION_MS ?? 2000);
const warmupMs = Number(process.env.MICRO_WARMUP_MS ?? 500);
const IN_FLIGHT = 64;
const specs = [{ algorithm: 0, limit: 1_000_000, windowMs: 60_000, blockMs: 0 }];

async function measure(decide) {
  let key = 0;
  const loop = async (ms) => {
    const end = performance.now() + ms;
    let ops = 0;
    while (performance.now() < end) {
      const batch = [];
      for (let i = 0; i < IN_FLIGHT; i++) batch.push(decide(`k${key++ % 10_000}`));
      const decisions = await Promise.all(batch);
      for (const d of decisions) if (d[0] !== 0) throw new Error(`${impl}: a decision was a refusal`);
      ops += IN_FLIGHT;
    }
    return ops;
  };
  await loop(warmupMs);
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  const ops = await loop(durationMs);
  const elapsedMs = performance.now() - start;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    ops,
    opsPerSecond: ops / (elapsedMs / 1000),
    nsPerOp: (elapsedMs * 1e6) / ops,
    // The worker's own CPU per decision (the primary's is on another core).
    cpuMicrosPerOp: (cpu.user + cpu.system) / ops,
    maxRss: process.resourceUsage().maxRSS * 1024,
  };
}

if (impl === 'memory') {
  const { MemoryStore } = await requireExports('@perfstack/rate-limit', ['MemoryStore']);
  const store = new MemoryStore({ specs, global: [false], maxKeys: 100_000, sweepIntervalMs: 60_000, clock: Date.now });
  const result = await measure(async (key) => [...store.decide(key, 1, Date.now(), false)]);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
} else if (impl !== 'cluster') {
  throw new Error(`MICRO_IMPL must be cluster or memory, got ${impl}`);
} else if (cluster.isPrimary) {
  const { clusterPrimary } = await requireExports('perfstack/cluster', ['clusterPrimary']);
  const primary = clusterPrimary({ workers: 1, respawn: false });
  cluster.on('message', (_worker, message) => {
    if (message?.benchResult === undefined) return;
    process.stdout.write(`RESULT ${JSON.stringify(message.benchResult)}\n`);
    primary.close().then(() => process.exit(0));
  });
} else {
  const { clusterChannel } = await requireExports('@perfstack/core', ['clusterChannel']);
  const { ClusterStore } = await requireExports('@perfstack/rate-limit', ['ClusterStore']);
  const store = new ClusterStore(clusterChannel(), {
    ns: 'bench',
    specs,
    global: [false],
    maxKeys: 100_000,
    maxHeldKeys: 100_000,
  });
  const result = await measure((key) => store.decide(key, 1, -1, false));
  process.send({ benchResult: result });
}
