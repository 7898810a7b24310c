/**
 * The W-TinyLFU policy (src/store/tinylfu.ts, src/store/sketch.ts) on its own: the
 * frequency sketch (counts, saturation, aging), admission decisions, both bounds after
 * every operation, deletes and ttl expiry, and its place in the MemoryStore (tags,
 * eviction counts). Hit ratios on a seeded workload are in eviction-hits.test.ts.
 */
import { MemoryStore, TinyLfuCache } from '@perfstack/cache';
import { describe, expect, it } from 'vitest';
import { buildEntry, type Entry } from '../src/entry.js';
import { FrequencySketch, hashKey, MAX_FREQUENCY } from '../src/store/sketch.js';

/** A small seeded PRNG (mulberry32) so every run makes the same operations. */
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

describe('FrequencySketch', () => {
  it('counts each key exactly while keys are few, and saturates at 15', () => {
    const sketch = new FrequencySketch(1024);
    const a = hashKey('/a');
    const b = hashKey('/b');
    for (let i = 0; i < 7; i++) sketch.increment(a);
    sketch.increment(b);
    expect(sketch.frequency(a)).toBe(7);
    expect(sketch.frequency(b)).toBe(1);
    expect(sketch.frequency(hashKey('/never'))).toBe(0);
    for (let i = 0; i < 20; i++) sketch.increment(b);
    expect(sketch.frequency(b)).toBe(MAX_FREQUENCY);
  });

  it('halves every counter after sampleSize increments (aging)', () => {
    const sketch = new FrequencySketch(16);
    expect(sketch.sampleSize).toBe(160);
    const hot = hashKey('/hot');
    const odd = hashKey('/odd');
    for (let i = 0; i < 12; i++) sketch.increment(hot);
    for (let i = 0; i < 5; i++) sketch.increment(odd);
    // 17 so far; 142 more increments of one other key, then the 160th halves everything
    const other = hashKey('/other');
    for (let i = 0; i < 142; i++) sketch.increment(other);
    expect(sketch.additions).toBe(159);
    expect(sketch.frequency(hot)).toBe(12);
    sketch.increment(other);
    expect(sketch.additions).toBe(0);
    expect(sketch.frequency(hot)).toBe(6);
    expect(sketch.frequency(odd)).toBe(2);
    expect(sketch.frequency(other)).toBe(7);
  });

  it('never estimates below the true count (count-min), even with many colliding keys', () => {
    const sketch = new FrequencySketch(16); // 32 counters a row for 200 keys: collisions
    const counts = new Map<string, number>();
    const random = prng(7);
    for (let i = 0; i < 150; i++) {
      const key = `/k${Math.floor(random() * 200)}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      sketch.increment(hashKey(key));
    }
    for (const [key, count] of counts) {
      expect(sketch.frequency(hashKey(key))).toBeGreaterThanOrEqual(Math.min(count, MAX_FREQUENCY));
    }
  });
});

describe('TinyLfuCache admission', () => {
  /** 100 entries: a window of 1, probation + protected of 99 (protected at most 79). */
  function filled() {
    const evicted: string[] = [];
    const cache = new TinyLfuCache<string>({
      maxEntries: 100,
      dispose: (_v, key, reason) => {
        if (reason === 'evict') evicted.push(key);
      },
    });
    for (let i = 0; i < 100; i++) cache.set(`k${i}`, `v${i}`);
    return { cache, evicted };
  }

  it('new entries land in the window; the window overflows into probation', () => {
    const { cache, evicted } = filled();
    expect(cache.size).toBe(100);
    expect(evicted).toEqual([]);
    expect(cache.segmentOf('k99')).toBe('window');
    expect(cache.segmentOf('k0')).toBe('probation');
    expect(cache.segmentOf('k98')).toBe('probation');
  });

  it('a candidate no more frequent than the victim is rejected; the victim stays', () => {
    const { cache, evicted } = filled();
    // both seen once; count-min may over-estimate k0 through collisions, which only helps it
    expect(cache.frequency('k99')).toBeLessThanOrEqual(cache.frequency('k0'));
    cache.set('new', 'x'); // k99 leaves the window: frequency 1 against k0's 1
    expect(evicted).toEqual(['k99']);
    expect(cache.has('k0')).toBe(true);
    expect(cache.segmentOf('new')).toBe('window');
    expect(cache.size).toBe(100);
  });

  it('a candidate seen more often than the victim is admitted and the victim goes', () => {
    const { cache, evicted } = filled();
    cache.set('hot', 'h');
    cache.set('hot', 'h2');
    cache.set('hot', 'h3'); // frequency 3, still in the window (k99 was rejected for it)
    expect(evicted).toEqual(['k99']);
    expect(cache.frequency('hot')).toBeGreaterThan(cache.frequency('k0'));
    cache.set('next', 'n'); // 'hot' becomes the candidate against k0 (frequency 1)
    expect(evicted).toEqual(['k99', 'k0']);
    expect(cache.segmentOf('hot')).toBe('probation');
    expect(cache.get('hot')).toBe('h3');
    // 3 sets + 1 get; count-min may only over-estimate (256 counters a row, 102 keys)
    expect(cache.frequency('hot')).toBeGreaterThanOrEqual(4);
  });

  it('a victim read often survives; the next oldest does not protect a cold candidate either', () => {
    const { cache, evicted } = filled();
    for (let i = 0; i < 3; i++) cache.get('k0'); // promoted to protected
    expect(cache.segmentOf('k0')).toBe('protected');
    for (let i = 0; i < 4; i++) cache.set('a', 'a'); // frequency 4
    // count-min only over-estimates: k1 was seen once, maybe more through collisions
    expect(cache.frequency('a')).toBeGreaterThan(cache.frequency('k1'));
    cache.set('b', 'b'); // candidate 'a' against the oldest in probation, k1
    expect(evicted).toEqual(['k99', 'k1']);
    expect(cache.has('k0')).toBe(true);
  });

  it('a probation hit promotes to protected; protected overflow is demoted, not evicted', () => {
    const cache = new TinyLfuCache<number>({ maxEntries: 10 }); // window 1, main 9, protected 7
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, i);
    for (let i = 0; i < 9; i++) cache.get(`k${i}`);
    const segments = Array.from({ length: 10 }, (_, i) => cache.segmentOf(`k${i}`));
    expect(segments).toEqual([
      'probation',
      'probation',
      'protected',
      'protected',
      'protected',
      'protected',
      'protected',
      'protected',
      'protected',
      'window',
    ]);
    expect(cache.size).toBe(10);
  });

  it('a loop larger than the cache keeps a stable core instead of missing every time (LRU: 0 hits)', () => {
    const cache = new TinyLfuCache<number>({ maxEntries: 100 });
    let hits = 0;
    for (let pass = 0; pass < 5; pass++) {
      for (let i = 0; i < 150; i++) {
        const key = `loop${i}`;
        if (cache.get(key) !== undefined) hits++;
        else cache.set(key, i);
      }
    }
    // Pass 1 fills the main space; later passes find most of it still there (at most 99 a
    // pass: one slot is the window, which the loop flushes). LRU finds nothing: each key
    // was evicted 50 requests before it comes back.
    expect(hits).toBeGreaterThanOrEqual(4 * 90);
    expect(hits).toBeLessThanOrEqual(4 * 99);
  });
});

describe('TinyLfuCache bounds, deletes and expiry', () => {
  it('never holds more than maxEntries or maxBytes, and disposes of exactly what leaves', () => {
    const random = prng(42);
    const live = new Map<string, number>();
    const cache = new TinyLfuCache<number>({
      maxEntries: 40,
      maxBytes: 5000,
      sizeOf: (value) => value,
      dispose: (value, key) => {
        expect(live.get(key)).toBe(value);
        live.delete(key);
      },
    });
    for (let op = 0; op < 20_000; op++) {
      const key = `k${Math.floor(random() ** 2 * 300)}`;
      const r = random();
      if (r < 0.6) {
        if (cache.get(key) === undefined) expect(live.has(key)).toBe(false);
      } else if (r < 0.95) {
        const size = 1 + Math.floor(random() * 600);
        cache.set(key, size);
        live.set(key, size);
      } else {
        cache.delete(key);
      }
      expect(cache.size).toBeLessThanOrEqual(40);
      expect(cache.calculatedSize).toBeLessThanOrEqual(5000);
    }
    expect(cache.size).toBe(live.size);
    let bytes = 0;
    for (const [key, size] of live) {
      bytes += size;
      expect(cache.peek(key)).toBe(size);
    }
    expect(cache.calculatedSize).toBe(bytes);
    expect(new Set(cache.keys())).toEqual(new Set(live.keys()));
  });

  it('a value larger than maxBytes is not stored and removes the old value (as lru-cache does)', () => {
    const reasons: string[] = [];
    const cache = new TinyLfuCache<number>({
      maxEntries: 10,
      maxBytes: 100,
      sizeOf: (v) => v,
      dispose: (v, k, reason) => reasons.push(`${k}=${v}:${reason}`),
    });
    cache.set('a', 50);
    cache.set('a', 101);
    expect(cache.has('a')).toBe(false);
    expect(cache.calculatedSize).toBe(0);
    expect(reasons).toEqual(['a=50:set']);
  });

  it('the entry being written is kept even when it needs every other entry evicted', () => {
    const cache = new TinyLfuCache<number>({ maxEntries: 10, maxBytes: 100, sizeOf: (v) => v });
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, 10);
    cache.set('big', 100);
    expect([...cache.keys()]).toEqual(['big']);
    expect(cache.calculatedSize).toBe(100);
  });

  it('replacing a value disposes the old one with reason "set" and re-counts its bytes', () => {
    const reasons: string[] = [];
    const cache = new TinyLfuCache<number>({
      maxEntries: 10,
      maxBytes: 100,
      sizeOf: (v) => v,
      dispose: (v, k, reason) => reasons.push(`${k}=${v}:${reason}`),
    });
    cache.set('a', 10);
    cache.set('b', 20);
    cache.set('a', 30);
    expect(cache.calculatedSize).toBe(50);
    expect(reasons).toEqual(['a=10:set']);
    cache.set('b', 80); // 110 bytes: the other entry goes, the written one stays
    expect(reasons).toEqual(['a=10:set', 'b=20:set', 'a=30:evict']);
    expect(cache.calculatedSize).toBe(80);
  });

  it('delete frees the space at once and keeps the key frequency; a re-set starts in the window', () => {
    const reasons: string[] = [];
    const cache = new TinyLfuCache<string>({ maxEntries: 10, dispose: (_v, k, r) => reasons.push(`${k}:${r}`) });
    for (let i = 0; i < 10; i++) cache.set(`k${i}`, 'v');
    cache.get('k3');
    cache.get('k3');
    expect(cache.segmentOf('k3')).toBe('protected');
    expect(cache.delete('k3')).toBe(true);
    expect(cache.delete('k3')).toBe(false);
    expect(reasons).toEqual(['k3:delete']);
    expect(cache.size).toBe(9);
    expect(cache.frequency('k3')).toBe(3);
    cache.set('k3', 'again');
    expect(cache.segmentOf('k3')).toBe('window');
    expect(cache.size).toBe(10);
    expect(reasons).toEqual(['k3:delete']); // it fit: nothing evicted
  });

  it('expires entries by ttl: get drops them (reason "expire"), peek, has and keys skip them', () => {
    let now = 1000;
    const reasons: string[] = [];
    const cache = new TinyLfuCache<string>({
      maxEntries: 10,
      now: () => now,
      dispose: (_v, k, r) => reasons.push(`${k}:${r}`),
    });
    cache.set('short', 's', 100);
    cache.set('long', 'l', 10_000);
    cache.set('forever', 'f');
    now += 99;
    expect(cache.get('short')).toBe('s');
    now += 1;
    expect(cache.peek('short')).toBeUndefined();
    expect(cache.has('short')).toBe(false);
    expect([...cache.keys()].sort()).toEqual(['forever', 'long']);
    expect(cache.size).toBe(3); // still held until touched or evicted
    expect(cache.get('short')).toBeUndefined();
    expect(reasons).toEqual(['short:expire']);
    expect(cache.size).toBe(2);
    cache.set('long', 'l2'); // a set without ttl clears the expiry
    now += 1_000_000;
    expect(cache.get('long')).toBe('l2');
  });

  it('clear disposes of everything and forgets frequencies', () => {
    const reasons: string[] = [];
    const cache = new TinyLfuCache<string>({ maxEntries: 10, dispose: (_v, k, r) => reasons.push(`${k}:${r}`) });
    cache.set('a', '1');
    cache.get('a');
    cache.clear();
    expect(reasons).toEqual(['a:delete']);
    expect(cache.size).toBe(0);
    expect(cache.frequency('a')).toBe(0);
  });

  it('rejects bounds that make no sense', () => {
    expect(() => new TinyLfuCache({ maxEntries: 0 })).toThrow(RangeError);
    expect(() => new TinyLfuCache({ maxEntries: 1.5 })).toThrow(RangeError);
    expect(() => new TinyLfuCache({ maxEntries: 1, maxBytes: 0 })).toThrow(RangeError);
  });
});

describe('MemoryStore with each policy', () => {
  const NOW = Date.UTC(2026, 0, 1);
  function entry(body: string, tags: readonly string[] = []): Entry {
    return buildEntry({
      status: 200,
      headers: { 'content-type': 'text/plain' },
      body: Buffer.from(body),
      identityLength: Buffer.byteLength(body),
      encoding: undefined,
      storedAt: NOW,
      expiresAt: NOW + 60_000,
      staleWhileRevalidate: 0,
      staleIfError: 0,
      initialAge: 0,
      shared: false,
      varyNames: [],
      varyValues: [],
      tags,
      route: '/t',
    });
  }

  it.each(['lru', 'tinylfu'] as const)('%s: bounds, eviction count and the tag index stay exact', (eviction) => {
    let evictions = 0;
    const one = entry('x'.repeat(100), ['t']).size;
    const store = new MemoryStore({
      maxEntries: 20,
      maxBytes: one * 15,
      eviction,
      onEvict: (n) => {
        evictions += n;
      },
    });
    expect(store.eviction).toBe(eviction);
    const random = prng(3);
    for (let i = 0; i < 2000; i++) {
      const key = `/k${Math.floor(random() ** 2 * 100)}`;
      if (store.get(key) === undefined) store.put(key, entry('x'.repeat(100), ['t', key]));
      expect(store.keys).toBeLessThanOrEqual(15);
      expect(store.bytes).toBeLessThanOrEqual(one * 15);
      expect(store.entries).toBe(store.keys);
    }
    expect(evictions).toBeGreaterThan(0);
    // the tag index holds exactly the stored keys
    expect([...store.keysForTag('t')].sort()).toEqual(store.keysWithPrefix('/').sort());
    expect(store.keysForTag('t')).toHaveLength(store.keys);
    for (const key of store.keysWithPrefix('/')) expect(store.keysForTag(key)).toEqual([key]);
    // an entry removed as dead (engine: remove) or deleted frees its slot and its tags
    const [first, second] = store.keysWithPrefix('/') as [string, string];
    const stored = store.peek(first) as Entry;
    store.remove(first, stored);
    expect(store.delete(second)).toBe(1);
    expect(store.keysForTag(first)).toEqual([]);
    expect(store.keysForTag(second)).toEqual([]);
    expect(store.entries).toBe(13);
    store.clear();
    expect(store.entries).toBe(0);
    expect(store.keysForTag('t')).toEqual([]);
  });

  it('defaults to W-TinyLFU', () => {
    expect(new MemoryStore({ maxEntries: 10, maxBytes: 10_000 }).eviction).toBe('tinylfu');
  });
});
