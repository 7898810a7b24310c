/**
 * L1: the in-process store, bounded by entry count AND bytes; a URL without `Vary` is one
 * entry, a URL with `Vary` an array of its variants (at most {@link MAX_VARIANTS}). What
 * goes when a bound is reached is the `eviction` policy: `'tinylfu'` (W-TinyLFU,
 * ./tinylfu.ts: admits a new entry only if it is likely to be hit more than the one it
 * would replace) or `'lru'` (lru-cache, isaacs/node-lru-cache). A lookup is one `Map` read.
 *
 * A tag index (tag → keys) serves `invalidate({ tags })`; it only holds keys that have
 * tags and is cleaned when the policy disposes of an entry for any reason.
 */
import { LRUCache } from 'lru-cache';
import type { Entry } from '../entry.js';
import { varyValue } from '../http-semantics.js';
import { selectVariant } from '../variants.js';
import type { CacheStore } from './store.js';
import { TinyLfuCache } from './tinylfu.js';

/** Most variants one URL keeps (CORS with many origins, languages...). The oldest goes first. */
export const MAX_VARIANTS = 32;

/** What L1 holds per key. */
export type Stored = Entry | Entry[];

/** Eviction policies of the memory store. */
export type EvictionPolicy = 'lru' | 'tinylfu';

/** The policy used when none is given (benchmarks/RESULTS.md, "Eviction", says why). */
export const DEFAULT_EVICTION: EvictionPolicy = 'tinylfu';

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  readonly maxEntries: number;
  readonly maxBytes: number;
  /** What goes when a bound is reached. @default 'tinylfu' */
  readonly eviction?: EvictionPolicy;
  /** Called once per entry evicted to stay within the bounds. */
  readonly onEvict?: (count: number) => void;
}

function sizeOf(value: Stored): number {
  if (!Array.isArray(value)) return value.size;
  let size = 0;
  for (const entry of value) size += entry.size;
  return size;
}

function tagsOf(value: Stored): readonly string[] {
  if (!Array.isArray(value)) return value.tags;
  if (value.length === 1) return (value[0] as Entry).tags;
  const tags = new Set<string>();
  for (const entry of value) for (const tag of entry.tags) tags.add(tag);
  return [...tags];
}

/** True when `entry` is the variant selected by these request headers (RFC 9111 §4.1). */
export function matchesVariant(
  entry: Entry,
  headers: Readonly<Record<string, string | string[] | undefined>>,
): boolean {
  const names = entry.varyNames;
  for (let i = 0; i < names.length; i++) {
    // the same normalisation as when the variant was stored
    if (varyValue(headers, names[i] as string) !== entry.varyValues[i]) return false;
  }
  return true;
}

/** What the store needs of its bounded map; lru-cache and {@link TinyLfuCache} both are one. */
interface BoundedMap {
  get(key: string): Stored | undefined;
  peek(key: string): Stored | undefined;
  set(key: string, value: Stored): unknown;
  delete(key: string): boolean;
  clear(): void;
  keys(): Iterable<string>;
  readonly size: number;
  readonly calculatedSize: number;
}

/** The in-process store. */
export class MemoryStore implements CacheStore {
  /**
   * Made at the first write: lru-cache allocates and fills its arrays for all `maxEntries`
   * slots up front (about 2 ms at the default 10,000), and W-TinyLFU its frequency sketch
   * (4 bytes per slot), which a stack built per test, or a stack whose routes never store
   * anything, should not pay. Reads before then find nothing.
   */
  #map: BoundedMap | undefined;
  readonly #options: MemoryStoreOptions;
  readonly #tags = new Map<string, Set<string>>();
  #count = 0;

  constructor(options: MemoryStoreOptions) {
    this.#options = options;
  }

  /** The policy in use. */
  get eviction(): EvictionPolicy {
    return this.#options.eviction ?? DEFAULT_EVICTION;
  }

  #open(): BoundedMap {
    if (this.#map !== undefined) return this.#map;
    const onEvict = this.#options.onEvict;
    const dispose = (value: Stored, key: string, reason: string): void => {
      this.#count -= Array.isArray(value) ? value.length : 1;
      this.#unindex(key, value);
      if (reason === 'evict' && onEvict) onEvict(Array.isArray(value) ? value.length : 1);
    };
    this.#map =
      this.eviction === 'lru'
        ? new LRUCache<string, Stored>({
            max: this.#options.maxEntries,
            maxSize: this.#options.maxBytes,
            sizeCalculation: sizeOf,
            dispose,
          })
        : new TinyLfuCache<Stored>({
            maxEntries: this.#options.maxEntries,
            maxBytes: this.#options.maxBytes,
            sizeOf,
            dispose,
          });
    return this.#map;
  }

  /** The entry or variants stored under `key`, counting the access (recency, and frequency for W-TinyLFU). */
  get(key: string): Stored | undefined {
    return this.#map?.get(key);
  }

  /** Reads without counting an access. */
  peek(key: string): Stored | undefined {
    return this.#map?.peek(key);
  }

  /**
   * The variant of `key` these request headers select.
   *
   * @param count count the access (false: a look that may not be followed by a use, as
   *   perfstack's early hits take before deciding; they count it with {@link get} when they serve)
   */
  select(
    key: string,
    headers: Readonly<Record<string, string | string[] | undefined>>,
    count = true,
  ): Entry | undefined {
    const stored = count ? this.#map?.get(key) : this.#map?.peek(key);
    if (stored === undefined) return undefined;
    if (!Array.isArray(stored))
      return stored.varyNames.length === 0 || matchesVariant(stored, headers) ? stored : undefined;
    return selectVariant(stored, headers);
  }

  /** Stores an entry, replacing the variant with the same vary values (or the whole URL when it does not vary). */
  put(key: string, entry: Entry): void {
    const current = this.#map?.peek(key);
    let next: Stored = entry;
    if (entry.varyNames.length > 0 && current !== undefined) {
      const list = (Array.isArray(current) ? current : [current]).filter(
        (old) => old.varyNames.length > 0 && !sameVariant(old, entry),
      );
      list.push(entry);
      while (list.length > MAX_VARIANTS) list.shift();
      next = list;
    }
    if (!this.#set(key, next)) return;
    for (const tag of entry.tags) {
      let keys = this.#tags.get(tag);
      if (keys === undefined) {
        keys = new Set();
        this.#tags.set(tag, keys);
      }
      keys.add(key);
    }
  }

  /** Stores everything read from L2 for `key` at once. */
  putAll(key: string, entries: readonly Entry[]): void {
    for (const entry of entries) this.put(key, entry);
  }

  /** Removes one variant (e.g. dead), keeping the others. */
  remove(key: string, entry: Entry): void {
    const current = this.#map?.peek(key);
    if (current === undefined) return;
    if (!Array.isArray(current)) {
      if (current === entry) this.#map?.delete(key);
      return;
    }
    const rest = current.filter((e) => e !== entry);
    if (rest.length === 0) this.#map?.delete(key);
    else this.#set(key, rest);
  }

  #set(key: string, value: Stored): boolean {
    const lru = this.#open();
    lru.set(key, value);
    if (lru.peek(key) !== value) return false;
    this.#count += Array.isArray(value) ? value.length : 1;
    return true;
  }

  /** Deletes a key; returns the number of variants removed. */
  delete(key: string): number {
    const current = this.#map?.peek(key);
    if (current === undefined) return 0;
    this.#map?.delete(key);
    return Array.isArray(current) ? current.length : 1;
  }

  // ------------------------------------------------ the CacheStore contract (store.ts)

  /** Every variant of `key`, without counting an access. */
  readVariants(key: string): Entry[] {
    const stored = this.#map?.peek(key);
    if (stored === undefined) return [];
    return Array.isArray(stored) ? [...stored] : [stored];
  }

  /** {@link MemoryStore.put}; L1 bounds lifetime by the entry's own times, not `ttl`. */
  writeVariant(key: string, entry: Entry, _ttl: number): void {
    this.put(key, entry);
  }

  /** Deletes keys; returns how many existed. */
  deleteKeys(keys: readonly string[]): number {
    let removed = 0;
    for (const key of keys) if (this.delete(key) > 0) removed++;
    return removed;
  }

  /** Keys carrying any of `tags` (the index forgets them when they are deleted). */
  takeTagged(tags: readonly string[]): string[] {
    const keys = new Set<string>();
    for (const tag of tags) for (const key of this.keysForTag(tag)) keys.add(key);
    return [...keys];
  }

  /** Keys carrying `tag`. */
  keysForTag(tag: string): readonly string[] {
    const keys = this.#tags.get(tag);
    return keys === undefined ? [] : [...keys];
  }

  /** Keys starting with `prefix` (a scan of L1: invalidation is rare, lookups are not). */
  keysWithPrefix(prefix: string): string[] {
    const out: string[] = [];
    if (this.#map === undefined) return out;
    for (const key of this.#map.keys()) if (key.startsWith(prefix)) out.push(key);
    return out;
  }

  /** Drops everything. */
  clear(): void {
    this.#map?.clear();
    this.#tags.clear();
    this.#count = 0;
  }

  /** Number of stored entries (variants count one each). */
  get entries(): number {
    return this.#count;
  }

  /** Number of keys. */
  get keys(): number {
    return this.#map?.size ?? 0;
  }

  /** Bytes accounted. */
  get bytes(): number {
    return this.#map?.calculatedSize ?? 0;
  }

  #unindex(key: string, value: Stored): void {
    for (const tag of tagsOf(value)) {
      const keys = this.#tags.get(tag);
      if (keys === undefined) continue;
      keys.delete(key);
      if (keys.size === 0) this.#tags.delete(tag);
    }
  }
}

function sameVariant(a: Entry, b: Entry): boolean {
  if (a.varyNames.length !== b.varyNames.length) return false;
  for (let i = 0; i < a.varyNames.length; i++) {
    if (a.varyNames[i] !== b.varyNames[i] || a.varyValues[i] !== b.varyValues[i]) return false;
  }
  return true;
}
