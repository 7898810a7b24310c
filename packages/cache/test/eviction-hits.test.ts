/**
 * Hit counts of the memory store's two eviction policies on small seeded workloads (a
 * Zipf stream, the same with one-pass scans, a loop larger than the cache), checked
 * exactly against this file's own reference implementations:
 * - LRU: an array in recency order;
 * - W-TinyLFU: arrays for the window, probation and protected queues and the rules of
 *   src/store/tinylfu.ts written out plainly (frequencies from the same count-min sketch,
 *   src/store/sketch.ts, whose counting and aging tinylfu.test.ts checks on its own);
 * - Belady's optimum (MIN), computed offline from each key's next use: no policy may beat it.
 * The full study, at 1,000 and 10,000 entries, is benchmarks/eviction.js.
 */
import { MemoryStore } from '@perfstack/cache';
import { describe, expect, it } from 'vitest';
import { buildEntry } from '../src/entry.js';
import { FrequencySketch, hashKey } from '../src/store/sketch.js';

const CAPACITY = 40;

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `length` keys drawn from `universe` keys with P(rank r) ∝ 1/r^alpha. */
function zipfTrace(universe: number, alpha: number, length: number, seed: number): string[] {
  const cdf: number[] = [];
  let total = 0;
  for (let i = 0; i < universe; i++) {
    total += 1 / (i + 1) ** alpha;
    cdf.push(total);
  }
  const random = prng(seed);
  const trace: string[] = [];
  for (let n = 0; n < length; n++) {
    const u = random() * total;
    let i = 0;
    while ((cdf[i] as number) < u) i++;
    trace.push(`/z/${i}`);
  }
  return trace;
}

const WORKLOADS: Record<string, string[]> = {
  zipf: zipfTrace(400, 0.9, 6000, 11),
  // every 500 Zipf requests, 80 keys read once and never again
  'zipf+scan': zipfTrace(400, 0.9, 6000, 11).flatMap((key, i) =>
    i % 500 === 499 ? [key, ...Array.from({ length: 80 }, (_, s) => `/scan/${i}/${s}`)] : [key],
  ),
  loop: Array.from({ length: 3000 }, (_, i) => `/loop/${i % 60}`),
};

function referenceLru(trace: readonly string[], capacity: number): number {
  const order: string[] = []; // least recently used first
  let hits = 0;
  for (const key of trace) {
    const at = order.indexOf(key);
    if (at >= 0) {
      hits++;
      order.splice(at, 1);
    } else if (order.length === capacity) {
      order.shift();
    }
    order.push(key);
  }
  return hits;
}

function referenceTinyLfu(trace: readonly string[], capacity: number): number {
  const sketch = new FrequencySketch(capacity);
  const frequency = (key: string) => sketch.frequency(hashKey(key));
  const windowMax = Math.max(1, Math.round(capacity * 0.01));
  const protectedMax = Math.floor((capacity - windowMax) * 0.8);
  const window: string[] = [];
  const probation: string[] = [];
  const protectedQ: string[] = [];
  const where = new Map<string, string[]>();
  const move = (key: string, to: string[]) => {
    const from = where.get(key) as string[];
    from.splice(from.indexOf(key), 1);
    to.push(key);
    where.set(key, to);
  };
  const evict = (key: string) => {
    const from = where.get(key) as string[];
    from.splice(from.indexOf(key), 1);
    where.delete(key);
  };
  let hits = 0;
  for (const key of trace) {
    sketch.increment(hashKey(key));
    const queue = where.get(key);
    if (queue !== undefined) {
      hits++;
      if (queue === probation) {
        move(key, protectedQ);
        while (protectedQ.length > protectedMax && protectedQ[0] !== key) move(protectedQ[0] as string, probation);
      } else {
        move(key, queue);
      }
      continue;
    }
    window.push(key);
    where.set(key, window);
    const candidates: string[] = []; // newest first
    while (window.length > windowMax && window[0] !== key) {
      candidates.unshift(window[0] as string);
      move(window[0] as string, probation);
    }
    while (where.size > capacity) {
      const victim = probation[0] ?? protectedQ[0] ?? (window[0] === key ? window[1] : window[0]);
      const candidate = candidates[0];
      if (candidate === undefined || candidate === victim) {
        if (candidate !== undefined) candidates.shift();
        evict(victim as string);
      } else if (victim === undefined) {
        candidates.shift();
        evict(candidate);
      } else {
        candidates.shift();
        evict(frequency(candidate) > frequency(victim) ? victim : candidate);
      }
    }
  }
  return hits;
}

function referenceOptimal(trace: readonly string[], capacity: number): number {
  const nextUse: number[] = new Array(trace.length);
  const seen = new Map<string, number>();
  for (let i = trace.length - 1; i >= 0; i--) {
    nextUse[i] = seen.get(trace[i] as string) ?? Number.POSITIVE_INFINITY;
    seen.set(trace[i] as string, i);
  }
  const cached = new Map<string, number>(); // key → its next use
  let hits = 0;
  trace.forEach((key, i) => {
    if (cached.has(key)) hits++;
    else if (cached.size === capacity) {
      let farthest = key;
      let far = nextUse[i] as number;
      for (const [k, use] of cached) {
        if (use > far) {
          far = use;
          farthest = k;
        }
      }
      if (farthest === key) return; // the new key is used last: leave it out
      cached.delete(farthest);
    }
    cached.set(key, nextUse[i] as number);
  });
  return hits;
}

const entry = buildEntry({
  status: 200,
  headers: { 'content-type': 'text/plain' },
  body: Buffer.from('x'),
  identityLength: 1,
  encoding: undefined,
  storedAt: 0,
  expiresAt: 60_000,
  staleWhileRevalidate: 0,
  staleIfError: 0,
  initialAge: 0,
  shared: false,
  varyNames: [],
  varyValues: [],
  tags: [],
  route: '/t',
});

/** Hits of a MemoryStore with this policy: look up as the engine does; store on a miss. */
function storeHits(eviction: 'lru' | 'tinylfu', trace: readonly string[]): number {
  const store = new MemoryStore({ maxEntries: CAPACITY, maxBytes: 1_000_000_000, eviction });
  let hits = 0;
  for (const key of trace) {
    if (store.select(key, {}) !== undefined) hits++;
    else store.put(key, entry);
    if (store.keys > CAPACITY) throw new Error(`${eviction} held ${store.keys} keys`);
  }
  return hits;
}

describe(`eviction hit counts (cache of ${CAPACITY} entries)`, () => {
  const results = Object.entries(WORKLOADS).map(([name, trace]) => ({
    name,
    requests: trace.length,
    lru: storeHits('lru', trace),
    tinylfu: storeHits('tinylfu', trace),
    referenceLru: referenceLru(trace, CAPACITY),
    referenceTinyLfu: referenceTinyLfu(trace, CAPACITY),
    optimal: referenceOptimal(trace, CAPACITY),
  }));

  it.each(results)('$name: each policy hits exactly as its reference; none beats the optimum', (r) => {
    expect(r.lru).toBe(r.referenceLru);
    expect(r.tinylfu).toBe(r.referenceTinyLfu);
    expect(r.lru).toBeLessThanOrEqual(r.optimal);
    expect(r.tinylfu).toBeLessThanOrEqual(r.optimal);
  });

  it('W-TinyLFU beats LRU on the skewed and scan workloads, and LRU finds nothing in the loop', () => {
    const by = Object.fromEntries(results.map((r) => [r.name, r]));
    expect(by.zipf?.tinylfu).toBeGreaterThan(by.zipf?.lru as number);
    expect(by['zipf+scan']?.tinylfu).toBeGreaterThan(by['zipf+scan']?.lru as number);
    expect(by.loop?.lru).toBe(0);
    expect(by.loop?.tinylfu).toBeGreaterThan(0);
  });
});
