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

interface Node<V> {
  key: string;
  value: V;
  size: number;
  hash: number;
  /** 0: never expires. */
  expiresAt: number;
  queue: number;
  prev: Node<V> | undefined;
  next: Node<V> | undefined;
}

/** An LRU queue: `first` is the least recently used. */
class Queue<V> {
  first: Node<V> | undefined;
  last: Node<V> | undefined;
  count = 0;
  bytes = 0;
  constructor(readonly id: number) {}

  push(node: Node<V>): void {
    node.queue = this.id;
    node.prev = this.last;
    node.next = undefined;
    if (this.last === undefined) this.first = node;
    else this.last.next = node;
    this.last = node;
    this.count++;
    this.bytes += node.size;
  }

  unlink(node: Node<V>): void {
    if (node.prev === undefined) this.first = node.next;
    else node.prev.next = node.next;
    if (node.next === undefined) this.last = node.prev;
    else node.next.prev = node.prev;
    node.prev = undefined;
    node.next = undefined;
    this.count--;
    this.bytes -= node.size;
  }

  /** Makes `node` (already in this queue, not its last) the most recently used; counts are unchanged. */
  touch(node: Node<V>): void {
    const last = this.last as Node<V>;
    if (last === node) return;
    const next = node.next as Node<V>; // there is one: `node` is not the last
    if (node.prev === undefined) this.first = next;
    else node.prev.next = next;
    next.prev = node.prev;
    node.prev = last;
    node.next = undefined;
    last.next = node;
    this.last = node;
  }

  clear(): void {
    this.first = undefined;
    this.last = undefined;
    this.count = 0;
    this.bytes = 0;
  }
}

/** A W-TinyLFU cache bounded by entries and bytes. */
export class TinyLfuCache<V> {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly #map = new Map<string, Node<V>>();
  readonly #sketch: FrequencySketch;
  readonly #queues: readonly [Queue<V>, Queue<V>, Queue<V>];
  readonly #windowEntries: number;
  readonly #windowBytes: number;
  readonly #protectedEntries: number;
  readonly #protectedBytes: number;
  readonly #sizeOf: ((value: V, key: string) => number) | undefined;
  readonly #dispose: ((value: V, key: string, reason: DisposeReason) => void) | undefined;
  readonly #now: () => number;
  #bytes = 0;
  /**
   * The last node evicted, reused by the next insert: in a full cache every insert evicts
   * one entry (often the candidate itself), so this saves an allocation, and garbage, per miss.
   */
  #spare: Node<V> | undefined;

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
    this.#queues = [new Queue<V>(WINDOW), new Queue<V>(PROBATION), new Queue<V>(PROTECTED)];
    this.#sizeOf = options.sizeOf;
    this.#dispose = options.dispose;
    this.#now = options.now ?? (() => performance.now());
  }

  /** The value of `key`, counting the access (frequency and recency); undefined when absent or expired. */
  get(key: string): V | undefined {
    const node = this.#map.get(key);
    if (node === undefined) return undefined;
    if (node.expiresAt !== 0 && node.expiresAt <= this.#now()) {
      this.#remove(node, 'expire');
      return undefined;
    }
    this.#sketch.increment(node.hash);
    this.#onHit(node);
    return node.value;
  }

  /** The value of `key` without counting an access. */
  peek(key: string): V | undefined {
    const node = this.#map.get(key);
    if (node === undefined || (node.expiresAt !== 0 && node.expiresAt <= this.#now())) return undefined;
    return node.value;
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
    let node = this.#map.get(key);
    if (size > this.maxBytes) {
      if (node !== undefined) this.#remove(node, 'set');
      return this;
    }
    if (node !== undefined) {
      const old = node.value;
      const queue = this.#queues[node.queue] as Queue<V>;
      queue.bytes += size - node.size;
      this.#bytes += size - node.size;
      node.size = size;
      node.value = value;
      node.expiresAt = expiresAt;
      this.#sketch.increment(node.hash);
      this.#onHit(node);
      if (old !== value) this.#dispose?.(old, key, 'set');
    } else {
      node = this.#spare;
      if (node === undefined) {
        node = { key, value, size, hash: hashKey(key), expiresAt, queue: WINDOW, prev: undefined, next: undefined };
      } else {
        this.#spare = undefined;
        node.key = key;
        node.value = value;
        node.size = size;
        node.hash = hashKey(key);
        node.expiresAt = expiresAt;
      }
      this.#map.set(key, node);
      this.#sketch.increment(node.hash);
      this.#queues[WINDOW].push(node);
      this.#bytes += size;
    }
    this.#rebalance(node);
    return this;
  }

  /** Deletes `key`; true when it was there. Its frequency is kept (it says how popular the key is). */
  delete(key: string): boolean {
    const node = this.#map.get(key);
    if (node === undefined) return false;
    this.#remove(node, 'delete');
    return true;
  }

  /** Removes everything (each value disposed with reason `delete`) and forgets the frequencies. */
  clear(): void {
    const nodes = [...this.#map.values()];
    this.#map.clear();
    for (const queue of this.#queues) queue.clear();
    this.#bytes = 0;
    this.#spare = undefined;
    this.#sketch.clear();
    if (this.#dispose !== undefined) for (const node of nodes) this.#dispose(node.value, node.key, 'delete');
  }

  /** Keys held (not expired), in no particular order. */
  *keys(): IterableIterator<string> {
    const now = this.#now();
    for (const node of this.#map.values()) {
      if (node.expiresAt === 0 || node.expiresAt > now) yield node.key;
    }
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
    const node = this.#map.get(key);
    return node === undefined ? undefined : SEGMENTS[node.queue];
  }

  // ------------------------------------------------------------------ policy

  /** Recency on a hit: window and protected reorder; a hit in probation promotes to protected. */
  #onHit(node: Node<V>): void {
    if (node.queue !== PROBATION) {
      (this.#queues[node.queue] as Queue<V>).touch(node);
      return;
    }
    const [, probation, protectedQ] = this.#queues;
    probation.unlink(node);
    protectedQ.push(node);
    // Protected over its share: its least recently used go back to probation (most recent end).
    while (
      (protectedQ.count > this.#protectedEntries || protectedQ.bytes > this.#protectedBytes) &&
      protectedQ.first !== undefined &&
      protectedQ.first !== node
    ) {
      const demoted = protectedQ.first;
      protectedQ.unlink(demoted);
      probation.push(demoted);
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
  #rebalance(keep: Node<V>): void {
    const [window, probation, protectedQ] = this.#queues;
    let candidates = 0;
    while (
      (window.count > this.#windowEntries || window.bytes > this.#windowBytes) &&
      window.first !== undefined &&
      window.first !== keep
    ) {
      const moved = window.first;
      window.unlink(moved);
      probation.push(moved);
      candidates++;
    }
    if (!this.#over()) return;
    let candidate = candidates > 0 ? probation.last : undefined;
    let victim = probation.first;
    while (this.#over()) {
      if (candidates <= 0) candidate = undefined;
      if (candidate === undefined && victim === undefined) {
        // Probation is empty: take the oldest of protected, then of the window.
        victim = protectedQ.first ?? window.first;
        if (victim === keep) victim = victim.next;
        if (victim === undefined) return; // only `keep` is left, and it fits
      }
      if (victim === keep) victim = victim.next;
      if (candidate === undefined || victim === undefined || candidate === victim) {
        const gone = (victim ?? candidate) as Node<V>;
        if (gone === candidate) {
          candidate = candidate.prev;
          candidates--;
        }
        if (gone === victim) victim = victim.next;
        this.#remove(gone, 'evict');
        continue;
      }
      candidates--;
      if (this.#sketch.frequency(candidate.hash) > this.#sketch.frequency(victim.hash)) {
        const gone = victim;
        victim = victim.next;
        candidate = candidate.prev;
        this.#remove(gone, 'evict');
      } else {
        const gone = candidate;
        candidate = candidate.prev;
        this.#remove(gone, 'evict');
      }
    }
  }

  #remove(node: Node<V>, reason: DisposeReason): void {
    (this.#queues[node.queue] as Queue<V>).unlink(node);
    this.#map.delete(node.key);
    this.#bytes -= node.size;
    const value = node.value;
    if (reason === 'evict') {
      node.value = undefined as V; // the spare must not keep the value alive
      this.#spare = node;
    }
    this.#dispose?.(value, node.key, reason);
  }
}
