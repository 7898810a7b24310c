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
 *
 * `--instructions [--candidates map-async,data-wrap]`: instead of wall-clock rounds, each
 * candidate runs in a child under `valgrind --tool=callgrind --instr-atstart=no`, warmed
 * up (200,000 calls) before counting is turned on (`callgrind_control -i on`) for `--ops`
 * calls and dumped (`-d`): instructions per call, the same whatever else the machine does.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createCache } from '@perfstack/cache';
import { Cacheable } from 'cacheable';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    ops: { type: 'string', default: '1000000' },
    keys: { type: 'string', default: '1000' },
    json: { type: 'string' },
    instructions: { type: 'boolean', default: false },
    candidates: { type: 'string' },
    child: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(
    'node benchmarks/data-cache.js [--rounds 7] [--ops 1000000] [--keys 1000] [--json out.json] [--instructions]',
  );
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

/** Runs `ops` calls of one candidate (awaited unless it is synchronous). */
async function runOps(c, ops) {
  const { run } = c;
  if (c.sync) {
    let sink = 0;
    for (let i = 0; i < ops; i++) if (run(keys[i % KEYS]) !== undefined) sink++;
    if (sink !== ops) throw new Error(`${c.name} missed`);
  } else {
    for (let i = 0; i < ops; i++) await run(keys[i % KEYS]);
  }
}

// --child <name>: one candidate under callgrind, driven by the parent over stdin/stdout.
if (values.child !== undefined) {
  const c = candidates.find((x) => x.name === values.child);
  await runOps(c, 200_000); // warm-up: JIT tier-up before counting
  const lines = createInterface({ input: process.stdin });
  process.stdout.write('ready\n');
  for await (const line of lines) {
    if (line === 'go') {
      await runOps(c, OPS);
      process.stdout.write('done\n');
    } else break;
  }
  await data.close();
  process.exit(0);
}

// --instructions: instructions per call of each candidate, counted by callgrind (the same
// count whatever else the machine is doing), instead of wall-clock rounds.
if (values.instructions) {
  const dir = mkdtempSync(join(tmpdir(), 'perfstack-data-cg-'));
  const rows = [];
  const chosen = values.candidates?.split(',') ?? ['map-async', 'map-sync', 'data-wrap', 'data-get', 'cacheable-get'];
  for (const c of candidates.filter((x) => chosen.includes(x.name))) {
    const child = spawn(
      'valgrind',
      [
        '--tool=callgrind',
        '--instr-atstart=no',
        `--callgrind-out-file=${join(dir, `${c.name}.%p`)}`,
        process.execPath,
        fileURLToPath(import.meta.url),
        '--child',
        c.name,
        '--ops',
        String(OPS),
        '--keys',
        String(KEYS),
      ],
      { stdio: ['pipe', 'pipe', 'ignore'] },
    );
    const out = createInterface({ input: child.stdout });
    const next = () => new Promise((resolve) => out.once('line', resolve));
    await next(); // ready
    spawnSync('callgrind_control', ['-i', 'on', String(child.pid)], { stdio: 'ignore' });
    child.stdin.write('go\n');
    await next(); // done
    spawnSync('callgrind_control', ['-d', String(child.pid)], { stdio: 'ignore' });
    spawnSync('callgrind_control', ['-i', 'off', String(child.pid)], { stdio: 'ignore' });
    child.stdin.end('exit\n');
    await new Promise((resolve) => child.once('exit', resolve));
    // `callgrind_control -d` wrote `<name>.<pid>.1`: the calls only (the final file at exit is not counted).
    let total = 0;
    const part = new RegExp(`^${c.name}\\.\\d+\\.\\d+$`);
    for (const file of readdirSync(dir).filter((f) => part.test(f))) {
      const text = readFileSync(join(dir, file), 'utf8');
      const summary = /^summary:\s+(\d+)/m.exec(text) ?? /^totals:\s+(\d+)/m.exec(text);
      if (summary !== null) total += Number(summary[1]);
    }
    rows.push({ name: c.name, title: c.title, instructionsPerCall: Math.round(total / OPS) });
    console.error(`${c.name}: ${Math.round(total / OPS)} instructions per call`);
  }
  rmSync(dir, { recursive: true, force: true });
  const base = rows.find((r) => r.name === 'map-async')?.instructionsPerCall ?? rows[0].instructionsPerCall;
  console.log(`data-cache L1 hit under callgrind: instructions per call, ${OPS} calls each (node ${process.version})`);
  for (const r of rows)
    console.log(
      r.name.padEnd(16),
      String(r.instructionsPerCall).padEnd(10),
      `${(r.instructionsPerCall / base).toFixed(2)}x`,
    );
  if (values.json) {
    const { writeFileSync } = await import('node:fs');
    writeFileSync(values.json, `${JSON.stringify({ ops: OPS, keys: KEYS, rows }, null, 2)}\n`);
  }
  await data.close();
  process.exit(0);
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
