/**
 * W-TinyLFU (Einziger, Friedman, Manes, ACM ToS 2017), bounded by entry count AND bytes,
 * synchronously: after every `set` both bounds hold, like lru-cache's `max` + `maxSize`.
 *
 * Three LRU queues share the space:
 * - **window** (1 % of it): every new entry lands here, so a burst of new keys is kept a
 *   little while (recency);
 * - **probation** and **protected** (the main space, 20/80): an entry hit while in
 *   probation is promoted to protected; protected's overflow is demoted back to probation.
 *
 * When the window overflows, its oldest entries become *candidates* for the main space.
 * When the cache is over a bound, a candidate is compared with the *victim*, probation's
 * least recently used entry, by their estimated recent frequency ({@link FrequencySketch}):
 * the candidate gets in only if it was seen more often than the victim; otherwise the
 * candidate goes. A one-pass scan or a loop larger than the cache therefore flows through
 * the window without flushing the popular keys, which LRU loses to every scan.
 *
 * Deviations from Caffeine, on purpose: the window keeps a fixed 1 % (no hill climbing);
 * no random admission of warm candidates (that guards against hash flooding, which keys
 * chosen by clients could attempt; here a flood only keeps its own keys out of L1); and
 * the entry being written is never evicted by its own `set` (lru-cache's contract: a value
 * that fits is stored), it waits in the window for the next write.
 *
 * Not a general-purpose library: string keys, the methods the memory store needs, an
 * optional per-entry ttl for the data cache. Written here because no npm package bounds
 * by count and bytes synchronously (see the cache README, "Eviction").
 */
import { FrequencySketch, hashKey } from './sketch.js';

/** Why an entry left the cache, as lru-cache names it. */
export type DisposeReason = 'evict' | 'set' | 'delete' | 'expire';

/** Where an entry sits. */
export type Segment = 'window' | 'probation' | 'protected';

/** Options of {@link TinyLfuCache}. */
export interface TinyLfuOptions<V> {
  /** Most entries held (at least 1). */
  readonly maxEntries: number;
  /** Most bytes held, as `sizeOf` counts them. @default Infinity */
  readonly maxBytes?: number;
  /** Size of one value (a non-negative integer). @default 1 per entry */
  readonly sizeOf?: (value: V, key: string) => number;
  /** Called for every value that leaves, with the reason. */
  readonly dispose?: (value: V, key: string, reason: DisposeReason) => void;
  /** Share of the space given to the window. @default 0.01 */
  readonly windowShare?: number;
  /** Share of the main space given to protected. @default 0.8 */
  readonly protectedShare?: number;
  /** Clock for per-entry ttl, ms. @default performance.now */
  readonly now?: () => number;
}

const WINDOW = 0;
const PROBATION = 1;
const PROTECTED = 2;
const SEGMENTS: readonly Segment[] = ['window', 'probation', 'protected'];
/** No slot (the end of a queue). */
const NIL = -1;

/**
 * A W-TinyLFU cache bounded by entries and bytes.
 *
 * Entries live in slots of preallocated arrays, as in lru-cache: a slot's key, value,
 * size, hash, queue and its neighbours in that queue (doubly linked by slot number). An
 * object per entry would cost about 90 bytes more each on 64-bit Node (no pointer
 * compression), which is more than the memory budget for L1 allows.
 */
export class TinyLfuCache<V> {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly #map = new Map<string, number>();
  readonly #keys: (string | undefined)[];
  readonly #values: (V | undefined)[];
  readonly #sizes: Float64Array;
  readonly #hashes: Int32Array;
  readonly #prev: Int32Array;
  readonly #next: Int32Array;
  readonly #queue: Uint8Array;
  /** Expiry per slot (0: none), allocated at the first `set` with a ttl. */
  #expires: Float64Array | undefined;
  /** Freed slots, reused first; `#fresh` is the next never-used slot. */
  readonly #free: Int32Array;
  #freeTop = 0;
  #fresh = 0;
  /** Per queue (window, probation, protected): oldest slot, newest slot, entries, bytes. */
  readonly #first = new Int32Array(3).fill(NIL);
  readonly #last = new Int32Array(3).fill(NIL);
  readonly #count = new Int32Array(3);
  readonly #queueBytes = new Float64Array(3);
  readonly #sketch: FrequencySketch;
  readonly #windowEntries: number;
  readonly #windowBytes: number;
  readonly #protectedEntries: number;
  readonly #protectedBytes: number;
  readonly #sizeOf: ((value: V, key: string) => number) | undefined;
  readonly #dispose: ((value: V, key: string, reason: DisposeReason) => void) | undefined;
  readonly #now: () => number;
  #bytes = 0;

  constructor(options: TinyLfuOptions<V>) {
    const maxEntries = options.maxEntries;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be an integer >= 1');
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    if (!(maxBytes > 0)) throw new RangeError('maxBytes must be > 0');
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
    const windowShare = options.windowShare ?? 0.01;
    const protectedShare = options.protectedShare ?? 0.8;
    this.#windowEntries = Math.max(1, Math.round(maxEntries * windowShare));
    this.#windowBytes = maxBytes * windowShare;
    this.#protectedEntries = Math.floor((maxEntries - this.#windowEntries) * protectedShare);
    this.#protectedBytes = (maxBytes - this.#windowBytes) * protectedShare;
    this.#sketch = new FrequencySketch(maxEntries);
    // one slot more than maxEntries: a new entry is in before the eviction it causes
    const slots = maxEntries + 1;
    this.#keys = new Array<string | undefined>(slots).fill(undefined);
    this.#values = new Array<V | undefined>(slots).fill(undefined);
    this.#sizes = new Float64Array(slots);
    this.#hashes = new Int32Array(slots);
    this.#prev = new Int32Array(slots);
    this.#next = new Int32Array(slots);
    this.#queue = new Uint8Array(slots);
    this.#free = new Int32Array(slots);
    this.#sizeOf = options.sizeOf;
    this.#dispose = options.dispose;
    this.#now = options.now ?? (() => performance.now());
  }

  /** The value of `key`, counting the access (frequency and recency); undefined when absent or expired. */
  get(key: string): V | undefined {
    const slot = this.#map.get(key);
    if (slot === undefined) return undefined;
    if (this.#expired(slot)) {
      this.#remove(slot, 'expire');
      return undefined;
    }
    this.#sketch.increment(this.#hashes[slot] as number);
    this.#onHit(slot);
    return this.#values[slot];
  }

  /** The value of `key` without counting an access. */
  peek(key: string): V | undefined {
    const slot = this.#map.get(key);
    if (slot === undefined || this.#expired(slot)) return undefined;
    return this.#values[slot];
  }

  /** True when `key` is held and not expired (no access counted). */
  has(key: string): boolean {
    return this.peek(key) !== undefined;
  }

  /**
   * Stores `value` under `key` (an access too), then evicts until both bounds hold. A
   * value larger than `maxBytes` is not stored and removes the key's old value, as in
   * lru-cache. `ttl` (ms, optional): the entry expires that long from now.
   */
  set(key: string, value: V, ttl?: number): this {
    const size = this.#sizeOf === undefined ? 1 : this.#sizeOf(value, key);
    if (!(size >= 0) || !Number.isFinite(size)) throw new TypeError(`sizeOf returned ${size} for "${key}"`);
    const expiresAt = ttl !== undefined && ttl > 0 ? this.#now() + ttl : 0;
    let slot = this.#map.get(key);
    if (size > this.maxBytes) {
      if (slot !== undefined) this.#remove(slot, 'set');
      return this;
    }
    if (slot !== undefined) {
      const old = this.#values[slot] as V;
      const grown = size - (this.#sizes[slot] as number);
      const q = this.#queue[slot] as number;
      this.#queueBytes[q] = (this.#queueBytes[q] as number) + grown;
      this.#bytes += grown;
      this.#sizes[slot] = size;
      this.#values[slot] = value;
      this.#setExpiry(slot, expiresAt);
      this.#sketch.increment(this.#hashes[slot] as number);
      this.#onHit(slot);
      if (old !== value) this.#dispose?.(old, key, 'set');
    } else {
      slot = this.#freeTop > 0 ? (this.#free[--this.#freeTop] as number) : this.#fresh++;
      this.#keys[slot] = key;
      this.#values[slot] = value;
      this.#sizes[slot] = size;
      const hash = hashKey(key);
      this.#hashes[slot] = hash;
      this.#setExpiry(slot, expiresAt);
      this.#map.set(key, slot);
      this.#sketch.increment(hash);
      this.#bytes += size;
      this.#push(WINDOW, slot);
    }
    this.#rebalance(slot);
    return this;
  }

  /** Deletes `key`; true when it was there. Its frequency is kept (it says how popular the key is). */
  delete(key: string): boolean {
    const slot = this.#map.get(key);
    if (slot === undefined) return false;
    this.#remove(slot, 'delete');
    return true;
  }

  /** Removes everything (each value disposed with reason `delete`) and forgets the frequencies. */
  clear(): void {
    const gone: [string, V][] = [];
    for (const [key, slot] of this.#map) gone.push([key, this.#values[slot] as V]);
    this.#map.clear();
    this.#keys.fill(undefined);
    this.#values.fill(undefined);
    this.#expires = undefined;
    this.#freeTop = 0;
    this.#fresh = 0;
    this.#first.fill(NIL);
    this.#last.fill(NIL);
    this.#count.fill(0);
    this.#queueBytes.fill(0);
    this.#bytes = 0;
    this.#sketch.clear();
    if (this.#dispose !== undefined) for (const [key, value] of gone) this.#dispose(value, key, 'delete');
  }

  /** Keys held (not expired), in no particular order. */
  *keys(): IterableIterator<string> {
    for (const [key, slot] of this.#map) if (!this.#expired(slot)) yield key;
  }

  /** Number of entries held (expired ones count until they are touched or evicted). */
  get size(): number {
    return this.#map.size;
  }

  /** Bytes held, as `sizeOf` counts them. */
  get calculatedSize(): number {
    return this.#bytes;
  }

  /** The estimated recent frequency of `key` (0–15). */
  frequency(key: string): number {
    return this.#sketch.frequency(hashKey(key));
  }

  /** Which queue holds `key` (tests and diagnostics). */
  segmentOf(key: string): Segment | undefined {
    const slot = this.#map.get(key);
    return slot === undefined ? undefined : SEGMENTS[this.#queue[slot] as number];
  }

  // ------------------------------------------------------------------ queues

  #expired(slot: number): boolean {
    const expires = this.#expires;
    if (expires === undefined) return false;
    const at = expires[slot] as number;
    return at !== 0 && at <= this.#now();
  }

  #setExpiry(slot: number, at: number): void {
    if (at !== 0) {
      this.#expires ??= new Float64Array(this.#sizes.length);
      this.#expires[slot] = at;
    } else if (this.#expires !== undefined) {
      this.#expires[slot] = 0;
    }
  }

  /** Appends `slot` to queue `q` as its most recently used. */
  #push(q: number, slot: number): void {
    const last = this.#last[q] as number;
    this.#queue[slot] = q;
    this.#prev[slot] = last;
    this.#next[slot] = NIL;
    if (last === NIL) this.#first[q] = slot;
    else this.#next[last] = slot;
    this.#last[q] = slot;
    this.#count[q] = (this.#count[q] as number) + 1;
    this.#queueBytes[q] = (this.#queueBytes[q] as number) + (this.#sizes[slot] as number);
  }

  #unlink(slot: number): void {
    const q = this.#queue[slot] as number;
    const prev = this.#prev[slot] as number;
    const next = this.#next[slot] as number;
    if (prev === NIL) this.#first[q] = next;
    else this.#next[prev] = next;
    if (next === NIL) this.#last[q] = prev;
    else this.#prev[next] = prev;
    this.#count[q] = (this.#count[q] as number) - 1;
    this.#queueBytes[q] = (this.#queueBytes[q] as number) - (this.#sizes[slot] as number);
  }

  /** Makes `slot` the most recently used of its queue; counts are unchanged. */
  #touch(slot: number): void {
    const q = this.#queue[slot] as number;
    const last = this.#last[q] as number;
    if (last === slot) return;
    const prev = this.#prev[slot] as number;
    const next = this.#next[slot] as number; // not NIL: `slot` is not the last
    if (prev === NIL) this.#first[q] = next;
    else this.#next[prev] = next;
    this.#prev[next] = prev;
    this.#prev[slot] = last;
    this.#next[slot] = NIL;
    this.#next[last] = slot;
    this.#last[q] = slot;
  }

  // ------------------------------------------------------------------ policy

  /** Recency on a hit: window and protected reorder; a hit in probation promotes to protected. */
  #onHit(slot: number): void {
    if (this.#queue[slot] !== PROBATION) {
      this.#touch(slot);
      return;
    }
    this.#unlink(slot);
    this.#push(PROTECTED, slot);
    // Protected over its share: its least recently used go back to probation (most recent end).
    while (
      ((this.#count[PROTECTED] as number) > this.#protectedEntries ||
        (this.#queueBytes[PROTECTED] as number) > this.#protectedBytes) &&
      this.#first[PROTECTED] !== slot
    ) {
      const demoted = this.#first[PROTECTED] as number;
      this.#unlink(demoted);
      this.#push(PROBATION, demoted);
    }
  }

  #over(): boolean {
    return this.#map.size > this.maxEntries || this.#bytes > this.maxBytes;
  }

  /**
   * Window overflow becomes candidates at probation's most recent end; then, while a bound
   * is exceeded, the newest candidate meets probation's oldest entry and the less frequent
   * of the two goes. `keep` (the entry being written) is never evicted here.
   */
  #rebalance(keep: number): void {
    let candidates = 0;
    while (
      ((this.#count[WINDOW] as number) > this.#windowEntries ||
        (this.#queueBytes[WINDOW] as number) > this.#windowBytes) &&
      this.#first[WINDOW] !== keep
    ) {
      const moved = this.#first[WINDOW] as number;
      this.#unlink(moved);
      this.#push(PROBATION, moved);
      candidates++;
    }
    if (!this.#over()) return;
    const next = this.#next;
    const prev = this.#prev;
    let candidate = candidates > 0 ? (this.#last[PROBATION] as number) : NIL;
    let victim = this.#first[PROBATION] as number;
    while (this.#over()) {
      if (candidates <= 0) candidate = NIL;
      if (candidate === NIL && victim === NIL) {
        // Probation is empty: take the oldest of protected, then of the window.
        victim = this.#first[PROTECTED] as number;
        if (victim === NIL) victim = this.#first[WINDOW] as number;
        if (victim === keep) victim = next[victim] as number;
        if (victim === NIL) return; // only `keep` is left, and it fits
      }
      if (victim === keep) victim = next[victim] as number;
      if (candidate === NIL || victim === NIL || candidate === victim) {
        const gone = victim !== NIL ? victim : candidate;
        if (gone === candidate) {
          candidate = prev[candidate] as number;
          candidates--;
        }
        if (gone === victim) victim = next[victim] as number;
        this.#remove(gone, 'evict');
        continue;
      }
      candidates--;
      if (
        this.#sketch.frequency(this.#hashes[candidate] as number) >
        this.#sketch.frequency(this.#hashes[victim] as number)
      ) {
        const gone = victim;
        victim = next[victim] as number;
        candidate = prev[candidate] as number;
        this.#remove(gone, 'evict');
      } else {
        const gone = candidate;
        candidate = prev[candidate] as number;
        this.#remove(gone, 'evict');
      }
    }
  }

  #remove(slot: number, reason: DisposeReason): void {
    this.#unlink(slot);
    const key = this.#keys[slot] as string;
    const value = this.#values[slot] as V;
    this.#map.delete(key);
    this.#bytes -= this.#sizes[slot] as number;
    this.#keys[slot] = undefined;
    this.#values[slot] = undefined;
    this.#free[this.#freeTop++] = slot;
    this.#dispose?.(value, key, reason);
  }
}
