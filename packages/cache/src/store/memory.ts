/**
 * L1: the in-process store. One lru-cache (isaacs/node-lru-cache) bounded by entry
 * count AND bytes; a URL without `Vary` is one entry, a URL with `Vary` an array of
 * its variants (at most {@link MAX_VARIANTS}). A lookup is one `Map` read in the LRU.
 *
 * A tag index (tag → keys) serves `invalidate({ tags })`; it only holds keys that have
 * tags and is cleaned when lru-cache disposes of an entry for any reason.
 */
import { LRUCache } from 'lru-cache';
import type { Entry } from '../entry.js';
import { varyValue } from '../http-semantics.js';
import { selectVariant } from '../variants.js';
import type { CacheStore } from './store.js';

/** Most variants one URL keeps (CORS with many origins, languages...). The oldest goes first. */
export const MAX_VARIANTS = 32;

/** What L1 holds per key. */
export type Stored = Entry | Entry[];

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  readonly maxEntries: number;
  readonly maxBytes: number;
  /** Called once per entry lru-cache evicts to stay within its bounds. */
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

/** The in-process LRU store. */
export class MemoryStore implements CacheStore {
  /**
   * Made at the first write: lru-cache allocates and fills its arrays for all `maxEntries`
   * slots up front (about 2 ms at the default 10,000), which a stack built per test, or a
   * stack whose routes never store anything, should not pay. Reads before then find nothing.
   */
  #lru: LRUCache<string, Stored> | undefined;
  readonly #options: MemoryStoreOptions;
  readonly #tags = new Map<string, Set<string>>();
  #count = 0;

  constructor(options: MemoryStoreOptions) {
    this.#options = options;
  }

  #open(): LRUCache<string, Stored> {
    if (this.#lru !== undefined) return this.#lru;
    const onEvict = this.#options.onEvict;
    this.#lru = new LRUCache<string, Stored>({
      max: this.#options.maxEntries,
      maxSize: this.#options.maxBytes,
      sizeCalculation: sizeOf,
      dispose: (value, key, reason) => {
        this.#count -= Array.isArray(value) ? value.length : 1;
        this.#unindex(key, value);
        if (reason === 'evict' && onEvict) onEvict(Array.isArray(value) ? value.length : 1);
      },
    });
    return this.#lru;
  }

  /** The entry or variants stored under `key`, touching it as recently used. */
  get(key: string): Stored | undefined {
    return this.#lru?.get(key);
  }

  /** Reads without touching recency. */
  peek(key: string): Stored | undefined {
    return this.#lru?.peek(key);
  }

  /** The variant of `key` these request headers select. */
  select(key: string, headers: Readonly<Record<string, string | string[] | undefined>>): Entry | undefined {
    const stored = this.#lru?.get(key);
    if (stored === undefined) return undefined;
    if (!Array.isArray(stored))
      return stored.varyNames.length === 0 || matchesVariant(stored, headers) ? stored : undefined;
    return selectVariant(stored, headers);
  }

  /** Stores an entry, replacing the variant with the same vary values (or the whole URL when it does not vary). */
  put(key: string, entry: Entry): void {
    const current = this.#lru?.peek(key);
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
    const current = this.#lru?.peek(key);
    if (current === undefined) return;
    if (!Array.isArray(current)) {
      if (current === entry) this.#lru?.delete(key);
      return;
    }
    const rest = current.filter((e) => e !== entry);
    if (rest.length === 0) this.#lru?.delete(key);
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
    const current = this.#lru?.peek(key);
    if (current === undefined) return 0;
    this.#lru?.delete(key);
    return Array.isArray(current) ? current.length : 1;
  }

  // ------------------------------------------------ the CacheStore contract (store.ts)

  /** Every variant of `key`, without touching recency. */
  readVariants(key: string): Entry[] {
    const stored = this.#lru?.peek(key);
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
    if (this.#lru === undefined) return out;
    for (const key of this.#lru.keys()) if (key.startsWith(prefix)) out.push(key);
    return out;
  }

  /** Drops everything. */
  clear(): void {
    this.#lru?.clear();
    this.#tags.clear();
    this.#count = 0;
  }

  /** Number of stored entries (variants count one each). */
  get entries(): number {
    return this.#count;
  }

  /** Number of keys. */
  get keys(): number {
    return this.#lru?.size ?? 0;
  }

  /** Bytes accounted. */
  get bytes(): number {
    return this.#lru?.calculatedSize ?? 0;
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
