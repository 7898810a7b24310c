/**
 * The data cache's hot path: `wrap()` on a memory (L1) hit, against a plain `Map.get` plus
 * an expiry check (the issue's target: within 1.5x), and against `cacheable` (the keyv
 * authors' L1/L2 layer, evaluated for the data cache: see packages/cache/README.md).
 *
 *   node benchmarks/data-cache.js [--rounds 7] [--ops 1000000] [--keys 1000] [--json out.json]
 *
 * Every candidate answers the same awaited call, `await get(key)`, over `--keys` keys that
 * are all fresh in memory, `--ops` times per round; the candidates run interleaved, in a
 * rotated order each round, after a discarded warm-up round. Before timing, each must
 * return the stored value for every key (exit 1 otherwise). Figures are ns per call;
 * ratios are per round against the awaited Map baseline, reported as median and spread
 * (min–max). Nothing is asserted: exit 0 whether or not the target is met.
 *
 * The baseline is an `async` function (a cache whose miss calls a loader answers with a
 * promise, so callers `await` it either way); the synchronous `Map.get` is shown too.
 */
import { parseArgs } from 'node:util';
import { createCache } from '@perfstack/cache';
import { Cacheable } from 'cacheable';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    ops: { type: 'string', default: '1000000' },
    keys: { type: 'string', default: '1000' },
    json: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log('node benchmarks/data-cache.js [--rounds 7] [--ops 1000000] [--keys 1000] [--json out.json]');
  process.exit(0);
}
const ROUNDS = Number(values.rounds);
const OPS = Number(values.ops);
const KEYS = Number(values.keys);
const TARGET = 1.5;
const keys = Array.from({ length: KEYS }, (_, i) => `item:${i}`);
const itemOf = (key) => ({ key, price: key.length });
const load = async (key) => itemOf(key);

// --- candidates -------------------------------------------------------------------------
const map = new Map();
for (const key of keys) map.set(key, { value: itemOf(key), expiresAt: Date.now() + 3_600_000 });
async function mapAsync(key) {
  const entry = map.get(key);
  if (entry !== undefined && entry.expiresAt > Date.now()) return entry.value;
  return load(key);
}
function mapSync(key) {
  const entry = map.get(key);
  return entry !== undefined && entry.expiresAt > Date.now() ? entry.value : undefined;
}

const data = createCache({ ttl: '1h', maxEntries: KEYS * 2, logger: { warn() {}, error() {} } });
for (const key of keys) await data.set(key, itemOf(key));
const wrapLoaders = new Map(keys.map((key) => [key, () => load(key)]));
const dataWrap = (key) => data.wrap(key, wrapLoaders.get(key));
const dataGet = (key) => data.get(key);

const cacheable = new Cacheable({ ttl: '1h' });
for (const key of keys) await cacheable.set(key, itemOf(key));
const cacheableGet = (key) => cacheable.get(key);
const cacheableWrapped = new Map(
  keys.map((key) => [key, cacheable.wrap(() => load(key), { ttl: '1h', keyPrefix: key })]),
);
const cacheableWrap = (key) => cacheableWrapped.get(key)();

const candidates = [
  { name: 'map-async', title: 'Map.get + expiry check (async function, awaited)', run: mapAsync, baseline: true },
  { name: 'map-sync', title: 'Map.get + expiry check (synchronous)', run: mapSync, sync: true },
  { name: 'data-wrap', title: '@perfstack/cache createCache().wrap(key, fn)', run: dataWrap, target: true },
  { name: 'data-get', title: '@perfstack/cache createCache().get(key)', run: dataGet },
  { name: 'cacheable-get', title: 'cacheable 2.5.0 Cacheable.get(key) (L1 only)', run: cacheableGet },
  { name: 'cacheable-wrap', title: 'cacheable 2.5.0 Cacheable.wrap(fn)(), L1 hit', run: cacheableWrap },
];

// --- correctness before timing ----------------------------------------------------------
for (const c of candidates) {
  for (const key of keys) {
    const got = await c.run(key);
    if (got?.key !== key) {
      console.error(`${c.name}: wrong value for ${key}: ${JSON.stringify(got)}`);
      process.exit(1);
    }
  }
}
// cacheable's wrap keys by the wrapped function's arguments: prove it served from its L1.
const before = cacheable.stats?.hits;

async function time(c) {
  const { run } = c;
  const start = process.hrtime.bigint();
  if (c.sync) {
    let sink = 0;
    for (let i = 0; i < OPS; i++) if (run(keys[i % KEYS]) !== undefined) sink++;
    if (sink !== OPS) throw new Error(`${c.name} missed`);
  } else {
    for (let i = 0; i < OPS; i++) await run(keys[i % KEYS]);
  }
  return Number(process.hrtime.bigint() - start) / OPS;
}

const results = Object.fromEntries(candidates.map((c) => [c.name, []]));
for (let round = -1; round < ROUNDS; round++) {
  const order = candidates.map((_, i) => candidates[(i + Math.max(round, 0)) % candidates.length]);
  for (const c of order) {
    const ns = await time(c);
    if (round >= 0) results[c.name].push(ns);
  }
}
const stats = data.stats();
if (stats.misses !== 0) {
  console.error(`data cache missed ${stats.misses} times: not an L1-hit benchmark`);
  process.exit(1);
}

const median = (list) => {
  const s = [...list].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const base = results['map-async'];
const rows = candidates.map((c) => {
  const ns = results[c.name];
  const ratios = ns.map((v, i) => v / base[i]);
  return {
    name: c.name,
    title: c.title,
    nsMedian: Math.round(median(ns) * 10) / 10,
    nsMin: Math.round(Math.min(...ns) * 10) / 10,
    nsMax: Math.round(Math.max(...ns) * 10) / 10,
    ratioMedian: Math.round(median(ratios) * 100) / 100,
    ratioMin: Math.round(Math.min(...ratios) * 100) / 100,
    ratioMax: Math.round(Math.max(...ratios) * 100) / 100,
  };
});
console.log(`data-cache L1 hit, ${ROUNDS} rounds × ${OPS} awaited calls over ${KEYS} keys (node ${process.version})`);
console.log('candidate'.padEnd(16), 'ns/call median (min–max)'.padEnd(28), 'ratio to map-async median (min–max)');
for (const r of rows) {
  console.log(
    r.name.padEnd(16),
    `${r.nsMedian} (${r.nsMin}–${r.nsMax})`.padEnd(28),
    `${r.ratioMedian}x (${r.ratioMin}–${r.ratioMax})`,
  );
}
const wrap = rows.find((r) => r.name === 'data-wrap');
console.log(
  `target: wrap on an L1 hit within ${TARGET}x of Map.get + expiry check: ${wrap.ratioMedian <= TARGET ? 'met' : 'NOT met'} (median ${wrap.ratioMedian}x)`,
);
if (before === undefined) console.log('(cacheable stats are off by default; its values were checked above)');
if (values.json) {
  const { writeFileSync } = await import('node:fs');
  writeFileSync(values.json, `${JSON.stringify({ rounds: ROUNDS, ops: OPS, keys: KEYS, rows }, null, 2)}\n`);
}
await data.close();
await cacheable.disconnect?.();
