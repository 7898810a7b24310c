/**
 * Eviction study for @perfstack/cache's L1 (issue 18, "a smarter L1"): hit ratio of each
 * policy on reproducible workloads, against Belady's optimum computed offline, and the
 * CPU cost per operation of each against lru-cache.
 *
 *   node benchmarks/eviction.js [--cache 1000,10000] [--requests 1000000] [--rounds 7]
 *
 * Workloads (seeded PRNG, mulberry32; the same sequence on every run and machine):
 * - `zipf-0.7`, `zipf-0.9`, `zipf-1.1`: keys drawn from a universe of `--keys` (100,000)
 *   with P(rank r) ∝ 1/r^α (exact inverse-CDF sampling; rank 1 is key `k0`, ranks are not
 *   shuffled — no policy here looks at key names beyond hashing them);
 * - `zipf-0.9+scan`: the Zipf 0.9 stream, and after every `--scan-every` (20,000)
 *   requests a one-pass scan of `--scan-length` × cache keys (2×) never seen before and
 *   never requested again (a crawler, a report, a cache-warming job);
 * - `zipf-0.9+shift`: Zipf 0.9 whose hot set moves to other keys every `--shift-every`
 *   (100,000) requests — a recency-leaning check that frequency does not keep a stale set;
 * - `loop`: keys 0 … 1.5 × cache − 1 in order, over and over (a loop larger than the cache).
 *
 * Every policy sees the same stream as `get(key)`, then `set(key)` on a miss, all entries
 * of size 1 (count-bounded). Policies:
 * - `lru`: lru-cache 11 (what the cache used before; `eviction: 'lru'`);
 * - `tinylfu`: @perfstack/cache's TinyLfuCache (built dist; `eviction: 'tinylfu'`);
 * - `transitory`: the npm W-TinyLFU library transitory 2.2.0, with `cleanUp()` after
 *   every set: by itself it evicts on a timer and lets the cache run 10 % over its bound,
 *   which would flatter its hit ratio;
 * - `sieve`: the npm SIEVE library @neophi/sieve-cache 1.5.0 (count bound only);
 * - `optimal`: Belady's MIN, offline: on a miss with the cache full, the key (cached or
 *   the new one) whose next use is farthest goes. The upper bound for every policy here.
 *
 * Cost per operation (`--rounds` interleaved rounds, the first discarded as warm-up;
 * median and min–max of CPU time, `process.cpuUsage`, user + system): `get` hit on a
 * full cache of 10,000 entries (keys read in a seeded random order), and `set` of a new
 * key on a full cache (each evicts one entry: the LRU one, or for TinyLFU the loser of
 * the admission test — usually the new key itself).
 *
 * With `--instructions`, lru and tinylfu each also run each operation alone under valgrind
 * (callgrind) twice, with n and 2n operations after the same setup; the difference of
 * the two instruction counts divided by n is the steady-state cost per operation,
 * deterministic whatever else runs on the machine.
 *
 * Nothing is asserted: figures go to stdout (a markdown table) and to `--json <file>`.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SieveCache } from '@neophi/sieve-cache';
import { TinyLfuCache } from '@perfstack/cache';
import { LRUCache } from 'lru-cache';
import { BoundedCache } from 'transitory';

const USAGE = `Usage: node benchmarks/eviction.js [options]

  --cache <n,n>        cache sizes in entries (default 1000,10000)
  --keys <n>           Zipf key universe (default 100000)
  --requests <n>       requests per workload (default 1000000)
  --scan-every <n>     Zipf requests between two scans (default 20000)
  --scan-length <x>    keys per scan, times the cache size (default 2)
  --shift-every <n>    requests between two moves of the hot set (default 100000)
  --seed <n>           PRNG seed (default 1)
  --rounds <n>         cost rounds, the first discarded (default 8)
  --instructions       also count instructions per operation of lru and tinylfu under
                       valgrind (callgrind): (count of a run with 2n operations − count
                       with n) / n, which the load of a shared machine does not change
                       (8 valgrind runs: 10–30 minutes)
  --no-cost            hit ratios only
  --no-hits            cost only
  --json <file>        write the figures as JSON too
  --help               this text`;

// ---------------------------------------------------------------- workloads

/** mulberry32: a small, fast, seeded PRNG returning [0, 1). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A sampler of Zipf(α) ranks 0 … n−1 by inverse CDF (binary search over the cumulative weights). */
function zipf(n, alpha, random) {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    total += 1 / (i + 1) ** alpha;
    cdf[i] = total;
  }
  return () => {
    const u = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** The workloads as arrays of key ids (Int32Array). Scan keys are ids past the universe. */
function workloads({ keys, requests, seed, cache, scanEvery, scanLength, shiftEvery }) {
  const out = [];
  for (const alpha of [0.7, 0.9, 1.1]) {
    const next = zipf(keys, alpha, prng(seed));
    const trace = new Int32Array(requests);
    for (let i = 0; i < requests; i++) trace[i] = next();
    out.push({ name: `zipf-${alpha.toFixed(1)}`, trace });
  }
  {
    const next = zipf(keys, 0.9, prng(seed));
    const trace = new Int32Array(requests);
    const scan = Math.round(scanLength * cache);
    let fresh = keys;
    let i = 0;
    let sinceScan = 0;
    while (i < requests) {
      if (sinceScan === scanEvery) {
        for (let s = 0; s < scan && i < requests; s++) trace[i++] = fresh++;
        sinceScan = 0;
      } else {
        trace[i++] = next();
        sinceScan++;
      }
    }
    out.push({ name: 'zipf-0.9+scan', trace });
  }
  {
    // popularity moves: every `shiftEvery` requests the Zipf ranks map to other keys
    // (a new hot set, as when yesterday's articles cool down), to check that admission by
    // frequency does not hold on to an old hot set (the sketch ages every 10 × cache)
    const next = zipf(keys, 0.9, prng(seed));
    const trace = new Int32Array(requests);
    for (let i = 0; i < requests; i++) {
      const epoch = Math.floor(i / shiftEvery);
      trace[i] = (next() + epoch * 7919) % keys;
    }
    out.push({ name: 'zipf-0.9+shift', trace });
  }
  {
    const length = Math.round(1.5 * cache);
    const trace = new Int32Array(requests);
    for (let i = 0; i < requests; i++) trace[i] = i % length;
    out.push({ name: 'loop', trace });
  }
  return out;
}

// ---------------------------------------------------------------- policies

/** Each policy as { get(key), set(key) } over string keys, bounded at `size` entries. */
const POLICIES = {
  lru: (size) => new LRUCache({ max: size }),
  tinylfu: (size) => new TinyLfuCache({ maxEntries: size }),
  transitory: (size) => {
    const cache = new BoundedCache({ maxSize: size });
    return {
      get: (key) => cache.getIfPresent(key) ?? undefined,
      set: (key, value) => {
        cache.set(key, value);
        cache.cleanUp();
      },
      get size() {
        return cache.size;
      },
    };
  },
  sieve: (size) => new SieveCache(size),
};

function hitsOf(make, size, trace, names) {
  const cache = make(size);
  let hits = 0;
  let maxSize = 0;
  for (let i = 0; i < trace.length; i++) {
    const key = names[trace[i]];
    if (cache.get(key) !== undefined) hits++;
    else {
      cache.set(key, 1);
      if (cache.size > maxSize) maxSize = cache.size;
    }
  }
  if (maxSize > size) throw new Error(`a policy held ${maxSize} entries with a bound of ${size}`);
  return hits;
}

/** Belady's MIN: hits of the optimal offline policy (a key may also be left out). */
function optimalHits(trace, size) {
  const n = trace.length;
  const nextUse = new Int32Array(n);
  const last = new Map();
  for (let i = n - 1; i >= 0; i--) {
    const key = trace[i];
    nextUse[i] = last.get(key) ?? n + 1;
    last.set(key, i);
  }
  // max-heap of [next use, key] with lazy deletion: `current` says each cached key's next use
  const heapUse = [];
  const heapKey = [];
  const current = new Map();
  const push = (use, key) => {
    let i = heapUse.length;
    heapUse.push(use);
    heapKey.push(key);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heapUse[parent] >= heapUse[i]) break;
      [heapUse[parent], heapUse[i]] = [heapUse[i], heapUse[parent]];
      [heapKey[parent], heapKey[i]] = [heapKey[i], heapKey[parent]];
      i = parent;
    }
  };
  const pop = () => {
    const use = heapUse[0];
    const key = heapKey[0];
    const lastUse = heapUse.pop();
    const lastKey = heapKey.pop();
    if (heapUse.length > 0) {
      heapUse[0] = lastUse;
      heapKey[0] = lastKey;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let top = i;
        if (l < heapUse.length && heapUse[l] > heapUse[top]) top = l;
        if (r < heapUse.length && heapUse[r] > heapUse[top]) top = r;
        if (top === i) break;
        [heapUse[top], heapUse[i]] = [heapUse[i], heapUse[top]];
        [heapKey[top], heapKey[i]] = [heapKey[i], heapKey[top]];
        i = top;
      }
    }
    return [use, key];
  };
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const key = trace[i];
    const use = nextUse[i];
    if (current.has(key)) {
      hits++;
      current.set(key, use);
      push(use, key);
      continue;
    }
    if (current.size < size) {
      current.set(key, use);
      push(use, key);
      continue;
    }
    // Full: the farthest next use among the cached keys and the new one goes.
    let [farUse, farKey] = pop();
    while (current.get(farKey) !== farUse) [farUse, farKey] = pop();
    if (farUse > use) {
      current.delete(farKey);
      current.set(key, use);
      push(use, key);
    } else {
      push(farUse, farKey); // the new key is used last: leave it out
    }
  }
  return hits;
}

// ---------------------------------------------------------------- cost

const COST_SIZE = 10_000;

function cpuNow() {
  const { user, system } = process.cpuUsage();
  return user + system;
}

/** ns of CPU per `get` hit on a full cache. */
function costGet(make, names, order, ops) {
  const cache = make(COST_SIZE);
  for (let i = 0; i < COST_SIZE; i++) cache.set(names[i], i);
  for (let i = 0; i < COST_SIZE; i++) cache.get(names[i]); // every key seen twice (TinyLFU: no admission churn)
  let sink = 0;
  const mask = order.length - 1;
  const start = cpuNow();
  for (let i = 0; i < ops; i++) sink += cache.get(names[order[i & mask]]) === undefined ? 1 : 0;
  const ns = ((cpuNow() - start) * 1000) / ops;
  if (sink !== 0) throw new Error('a get missed on a full cache of every key it reads');
  return ns;
}

/** ns of CPU per `set` of a new key on a full cache (one eviction each). */
function costSet(make, names, ops) {
  const cache = make(COST_SIZE);
  for (let i = 0; i < COST_SIZE; i++) cache.set(names[i], i);
  const start = cpuNow();
  for (let i = 0; i < ops; i++) cache.set(names[COST_SIZE + i], i);
  const ns = ((cpuNow() - start) * 1000) / ops;
  if (cache.size > COST_SIZE) throw new Error('a set went past the bound');
  return ns;
}

/** Child mode (`--op policy:get|set:n`): the setup, then n operations, then exit. */
function runOp(spec) {
  const [policy, op, count] = spec.split(':');
  const ops = Number(count);
  const make = POLICIES[policy];
  if (make === undefined || (op !== 'get' && op !== 'set') || !(ops > 0)) throw new Error(`bad --op ${spec}`);
  const names = [];
  for (let i = 0; i < COST_SIZE + 2 * ops + 1; i++) names.push(`/api/items/${i}`);
  const random = prng(1);
  const order = new Int32Array(1 << 16);
  for (let i = 0; i < order.length; i++) order[i] = Math.floor(random() * COST_SIZE);
  if (op === 'get') costGet(make, names, order, ops);
  else costSet(make, names, ops);
}

/** Instructions per operation: callgrind's total for 2n operations minus for n, over n. */
function instructionsPerOp(policy, op, ops) {
  const dir = mkdtempSync(join(tmpdir(), 'perfstack-eviction-'));
  try {
    const counts = [ops, 2 * ops].map((n) => {
      const child = spawnSync(
        'valgrind',
        [
          '--tool=callgrind',
          `--callgrind-out-file=${join(dir, `cg.${n}.out`)}`,
          process.execPath,
          // compile and collect garbage on the main thread: the same work in both runs
          '--single-threaded',
          fileURLToPath(import.meta.url),
          '--op',
          `${policy}:${op}:${n}`,
        ],
        { encoding: 'utf8' },
      );
      const match = /Collected : (\d+)/.exec(child.stderr ?? '');
      if (child.status !== 0 || match === null) {
        throw new Error(`valgrind run of ${policy}:${op}:${n} failed:\n${child.stderr?.slice(-2000)}`);
      }
      return Number(match[1]);
    });
    return (counts[1] - counts[0]) / ops;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// ---------------------------------------------------------------- main

function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      cache: { type: 'string', default: '1000,10000' },
      keys: { type: 'string', default: '100000' },
      requests: { type: 'string', default: '1000000' },
      'scan-every': { type: 'string', default: '20000' },
      'scan-length': { type: 'string', default: '2' },
      'shift-every': { type: 'string', default: '100000' },
      seed: { type: 'string', default: '1' },
      rounds: { type: 'string', default: '8' },
      'no-cost': { type: 'boolean', default: false },
      instructions: { type: 'boolean', default: false },
      op: { type: 'string' },
      'no-hits': { type: 'boolean', default: false },
      json: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  const int = (name, value) => {
    const number = Number(value);
    if (!Number.isInteger(number) || number <= 0) throw new Error(`--${name} must be a positive integer, got ${value}`);
    return number;
  };
  const scanLength = Number(values['scan-length']);
  if (!(scanLength > 0)) throw new Error(`--scan-length must be a positive number, got ${values['scan-length']}`);
  return {
    help: values.help,
    caches: values.cache.split(',').map((c) => int('cache', c)),
    keys: int('keys', values.keys),
    requests: int('requests', values.requests),
    scanEvery: int('scan-every', values['scan-every']),
    scanLength,
    shiftEvery: int('shift-every', values['shift-every']),
    seed: int('seed', values.seed),
    rounds: int('rounds', values.rounds),
    cost: !values['no-cost'],
    instructions: values.instructions,
    op: values.op,
    hits: !values['no-hits'],
    json: values.json,
  };
}

const pct = (hits, total) => ((100 * hits) / total).toFixed(2);

function main() {
  let settings;
  try {
    settings = parseCli(process.argv.slice(2));
  } catch (error) {
    console.error(`${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (settings.help) {
    console.log(USAGE);
    return;
  }
  if (settings.op !== undefined) {
    runOp(settings.op);
    return;
  }
  const result = { settings, node: process.version, hitRatios: [], cost: [] };
  const names = [];
  const nameOf = (id) => {
    while (names.length <= id) names.push(`/api/items/${names.length}`);
    return names[id];
  };
  const policies = Object.keys(POLICIES);

  if (settings.hits) {
    for (const cache of settings.caches) {
      console.log(
        `\n### Hit ratio (%), cache ${cache} entries, ${settings.requests} requests, keys ${settings.keys}, seed ${settings.seed}\n`,
      );
      console.log(`| workload | ${policies.join(' | ')} | optimal | tinylfu − lru |`);
      console.log(`| --- | ${policies.map(() => '---:').join(' | ')} | ---: | ---: |`);
      for (const { name, trace } of workloads({ ...settings, cache })) {
        let maxId = 0;
        for (let i = 0; i < trace.length; i++) if (trace[i] > maxId) maxId = trace[i];
        nameOf(maxId);
        const row = { cache, workload: name, requests: trace.length };
        for (const policy of policies) row[policy] = hitsOf(POLICIES[policy], cache, trace, names);
        row.optimal = optimalHits(trace, cache);
        for (const policy of policies) {
          if (row[policy] > row.optimal) throw new Error(`${policy} beat the optimum on ${name}: the optimum is wrong`);
        }
        result.hitRatios.push(row);
        const cells = [...policies, 'optimal'].map((p) => pct(row[p], trace.length));
        const delta = ((100 * (row.tinylfu - row.lru)) / trace.length).toFixed(2);
        console.log(`| ${name} | ${cells.join(' | ')} | ${delta.startsWith('-') ? delta : `+${delta}`} |`);
      }
    }
  }

  if (settings.cost) {
    const GET_OPS = 2_000_000;
    const SET_OPS = 300_000;
    nameOf(COST_SIZE + SET_OPS);
    const random = prng(settings.seed);
    const order = new Int32Array(1 << 16);
    for (let i = 0; i < order.length; i++) order[i] = Math.floor(random() * COST_SIZE);
    const samples = Object.fromEntries(policies.map((p) => [p, { get: [], set: [] }]));
    for (let round = 0; round < settings.rounds; round++) {
      for (const policy of policies) {
        const get = costGet(POLICIES[policy], names, order, GET_OPS);
        const set = costSet(POLICIES[policy], names, SET_OPS);
        if (round === 0) continue; // warm-up
        samples[policy].get.push(get);
        samples[policy].set.push(set);
      }
    }
    console.log(
      `\n### CPU ns per operation, cache ${COST_SIZE} entries, median of ${settings.rounds - 1} rounds (min–max)\n`,
    );
    console.log('| policy | get (hit) | vs lru-cache | set (new key, evicts one) | vs lru-cache |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    const lruGet = median(samples.lru.get);
    const lruSet = median(samples.lru.set);
    for (const policy of policies) {
      const { get, set } = samples[policy];
      const row = {
        policy,
        getMedian: median(get),
        getMin: Math.min(...get),
        getMax: Math.max(...get),
        setMedian: median(set),
        setMin: Math.min(...set),
        setMax: Math.max(...set),
      };
      result.cost.push(row);
      const f = (x) => x.toFixed(0);
      console.log(
        `| ${policy} | ${f(row.getMedian)} (${f(row.getMin)}–${f(row.getMax)}) | ${(row.getMedian / lruGet).toFixed(2)}x | ${f(row.setMedian)} (${f(row.setMin)}–${f(row.setMax)}) | ${(row.setMedian / lruSet).toFixed(2)}x |`,
      );
    }
  }
  if (settings.instructions) {
    const ops = { get: 100_000, set: 20_000 };
    console.log(`\n### Instructions per operation (callgrind), cache ${COST_SIZE} entries\n`);
    console.log('| policy | get (hit) | vs lru-cache | set (new key, evicts one) | vs lru-cache |');
    console.log('| --- | ---: | ---: | ---: | ---: |');
    // lru-cache and ours only: each run is minutes under valgrind
    const rows = ['lru', 'tinylfu'].map((policy) => ({
      policy,
      get: instructionsPerOp(policy, 'get', ops.get),
      set: instructionsPerOp(policy, 'set', ops.set),
    }));
    const lru = rows.find((r) => r.policy === 'lru');
    result.instructions = rows;
    for (const row of rows) {
      console.log(
        `| ${row.policy} | ${row.get.toFixed(0)} | ${(row.get / lru.get).toFixed(2)}x | ${row.set.toFixed(0)} | ${(row.set / lru.set).toFixed(2)}x |`,
      );
    }
  }
  if (settings.json) writeFileSync(settings.json, `${JSON.stringify(result, null, 2)}\n`);
}

main();
