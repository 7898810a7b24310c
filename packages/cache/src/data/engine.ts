/**
 * The data cache's shared state, one per `createCache()`: L1 (the response cache's
 * {@link MemoryStore}), L2 (Redis, data/l2.ts), the fills in flight, the per-namespace
 * counters, the read counts for warm starts (store/hot-keys.ts), and the invalidation stream
 * reader (store/invalidation-feed.ts) — the same `<prefix>cache-inv` stream the response
 * cache reads, which is what makes one tag bus.
 *
 * Its namespaces (data/data-cache.ts) are thin views that prefix keys.
 */
import { randomUUID } from 'node:crypto';
import { type Disposable, type HealthCheck, OnceLogger } from '@perfstack/core';
import { HotKeys, warmStart } from '../store/hot-keys.js';
import { cacheHealth, InvalidationFeed, type InvalidationOp } from '../store/invalidation-feed.js';
import { MemoryStore } from '../store/memory.js';
import { DataEntry, serialize } from './entry.js';
import { DataL2 } from './l2.js';
import type { CallOptions, DataCacheConfig } from './options.js';

/** The prefix of every data key, in L1 and in Redis (`cache::data:<namespace>:<key>`). */
export const DATA_PREFIX = 'data:';

/** A counter of a namespace, as the metrics read it. */
export type SpaceCounter = 'hits' | 'misses' | 'stale' | 'refreshesAhead' | 'warmStarted' | 'evictions';

/**
 * One namespace: its memory store (keyed by the caller's key, so a lookup hashes the key
 * the caller passed, with no prefix to concatenate) and its counters. Each namespace's
 * memory is bounded by `maxEntries` and `maxBytes` on its own.
 */
export class Space {
  readonly name: string;
  /** `data:<name>:`, the prefix of this namespace's keys in Redis and on the invalidation stream. */
  readonly prefix: string;
  readonly store: MemoryStore;
  hits = 0;
  misses = 0;
  stale = 0;
  refreshesAhead = 0;
  warmStarted = 0;
  evictions = 0;

  constructor(name: string, config: DataCacheConfig) {
    this.name = name;
    this.prefix = `${DATA_PREFIX}${name}:`;
    this.store = new MemoryStore({
      maxEntries: config.maxEntries,
      maxBytes: config.maxBytes,
      eviction: config.eviction,
      onEvict: (count) => {
        this.evictions += count;
      },
    });
  }
}

/** A background refresh that did not run because another instance holds the fill lock. */
const SKIPPED = Symbol('skipped');

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The shared state of one data cache. */
export class DataEngine {
  readonly config: DataCacheConfig;
  readonly l2: DataL2 | undefined;
  readonly feed: InvalidationFeed | undefined;
  readonly log: OnceLogger;
  readonly id = randomUUID();
  /** Fills in flight by namespaced key (one loader call per key per process). */
  readonly flights = new Map<string, Promise<unknown>>();
  /** Keys with a background refresh (stale-while-revalidate or refresh-ahead) under way. */
  readonly refreshing = new Set<string>();
  /** The namespaces, each with its own memory store (L1). */
  readonly spaces = new Map<string, Space>();
  /** Read counts are kept for Redis (warm starts) only with Redis. */
  readonly tracking: boolean;
  /** The read counts (with Redis and `warmStart` > 0). */
  readonly hot: HotKeys | undefined;
  /** Bumped by every invalidation: a fill that started before one is returned but not stored. */
  generation = 0;
  /** Without Redis: other caches of this process told about tag invalidations (the preset's tag bus). */
  readonly tagListeners = new Set<(tags: readonly string[]) => void>();
  readonly ready: Promise<number>;
  readonly #disposables: Disposable[] = [];
  closed = false;

  constructor(config: DataCacheConfig) {
    this.config = config;
    this.log = new OnceLogger(config.logger);
    const redis = config.redis;
    if (redis === undefined) {
      this.l2 = undefined;
      this.feed = undefined;
      this.tracking = false;
      this.hot = undefined;
      this.ready = Promise.resolve(0);
      return;
    }
    this.l2 = new DataL2(redis, config.redisTimeout);
    this.tracking = config.warmStart > 0;
    this.hot = this.tracking
      ? new HotKeys({
          redis,
          set: 'data',
          timeout: config.redisTimeout,
          flushInterval: config.accessFlushInterval,
          onError: (error) => this.storeError(error),
        })
      : undefined;
    this.feed = new InvalidationFeed({
      redis,
      store: this.l2.store,
      timeout: config.redisTimeout,
      onInvalidate: (op) => {
        if (op.from !== this.id) this.applyLocal(op.keys, op.tags, op.prefix);
      },
      onReset: () => {
        this.generation++;
        for (const space of this.spaces.values()) space.store.clear();
      },
      onError: (error) => this.storeError(error),
    });
    this.feed.start();
    this.#disposables.push(
      redis.onStatusChange((status) => {
        if (status === 'up') this.log.reset('DATA_CACHE_STORE_UNAVAILABLE');
      }),
    );
    this.ready = this.#warmStart();
  }

  /** A namespace (made on first use). */
  space(name: string): Space {
    let space = this.spaces.get(name);
    if (space === undefined) {
      space = new Space(name, this.config);
      this.spaces.set(name, space);
    }
    return space;
  }

  /** The namespace and its own key of a full key (`data:<namespace>:<key>`), if it is one of ours. */
  locate(full: string): { space: Space; key: string } | undefined {
    if (!full.startsWith(DATA_PREFIX)) return undefined;
    const at = full.indexOf(':', DATA_PREFIX.length);
    if (at === -1) return undefined;
    const space = this.spaces.get(full.slice(DATA_PREFIX.length, at));
    return space === undefined ? undefined : { space, key: full.slice(at + 1) };
  }

  /** Puts an entry in its namespace's memory. */
  #put(entry: DataEntry): void {
    const at = this.locate(entry.key);
    at?.space.store.put(at.key, entry.asStored);
  }

  /** Entries in memory, all namespaces. */
  get entries(): number {
    let n = 0;
    for (const space of this.spaces.values()) n += space.store.entries;
    return n;
  }

  /** Bytes accounted in memory, all namespaces. */
  get bytes(): number {
    let n = 0;
    for (const space of this.spaces.values()) n += space.store.bytes;
    return n;
  }

  /** Entries evicted from memory, all namespaces. */
  get evictions(): number {
    let n = 0;
    for (const space of this.spaces.values()) n += space.evictions;
    return n;
  }

  now(): number {
    return this.config.now();
  }

  /** Logs an L2 failure once (until Redis is back) and tells the shared connection. */
  storeError(error: unknown): void {
    this.config.redis?.recordError(error);
    this.log.warnOnce(
      'DATA_CACHE_STORE_UNAVAILABLE',
      `Redis (L2) call failed: ${error instanceof Error ? error.message : String(error)}; serving from memory and the loaders`,
    );
  }

  // ------------------------------------------------------------------ reads

  /** An entry that can still be served (fresh or within its stale window) in L1, else undefined. */
  peekL1(space: Space, key: string, now: number): DataEntry | undefined {
    const entry = space.store.get(key) as DataEntry | undefined;
    if (entry === undefined) return undefined;
    if (now < entry.staleUntil) return entry;
    space.store.delete(key);
    return undefined;
  }

  /** Reads one key from Redis into L1 (a failure is a miss). */
  async readL2(key: string): Promise<DataEntry | undefined> {
    const l2 = this.l2;
    if (l2 === undefined || !l2.available) return undefined;
    try {
      const entry = await l2.read(key, this.config.serializer, this.config.refreshAhead);
      if (entry === undefined || this.now() >= entry.staleUntil) return undefined;
      this.#put(entry);
      return entry;
    } catch (error) {
      this.storeError(error);
      return undefined;
    }
  }

  /** Reads many keys from Redis into L1 (a failure is a miss for all of them). */
  async readManyL2(keys: readonly string[]): Promise<(DataEntry | undefined)[]> {
    const l2 = this.l2;
    if (l2 === undefined || !l2.available || keys.length === 0) return keys.map(() => undefined);
    try {
      const entries = await l2.readMany(keys, this.config.serializer, this.config.refreshAhead);
      const now = this.now();
      return entries.map((entry) => {
        if (entry === undefined || now >= entry.staleUntil) return undefined;
        this.#put(entry);
        return entry;
      });
    } catch (error) {
      this.storeError(error);
      return keys.map(() => undefined);
    }
  }

  /** Counts a read for the warm-start ranking (batched: one increment here, one Redis batch per interval). */
  markRead(entry: DataEntry): void {
    this.hot?.markRead(entry);
  }

  /** Adds the reads counted since the last flush to Redis (`cache-hot:data`). */
  flushReads(): Promise<void> {
    return this.hot?.flush() ?? Promise.resolve();
  }

  // ------------------------------------------------------------------ writes

  /**
   * Makes an entry (serialised once, for Redis and the size bound). Throws a TypeError when
   * the value cannot be serialised; returns undefined when it is larger than `maxEntryBytes`.
   */
  makeEntry(key: string, value: unknown, call: CallOptions, now: number): DataEntry | undefined {
    const { payload, binary } = serialize(this.config.serializer, value);
    const entry = new DataEntry(
      key,
      value,
      payload,
      binary,
      now,
      call.ttl,
      call.staleWhileRevalidate,
      this.config.refreshAhead,
      call.tags,
    );
    if (entry.size > this.config.maxEntryBytes) {
      this.log.warnOnce(
        'DATA_CACHE_ENTRY_TOO_LARGE',
        `a value of ${entry.size} bytes under "${key.slice(0, 80)}" is larger than maxEntryBytes (${this.config.maxEntryBytes}): not cached`,
      );
      return undefined;
    }
    return entry;
  }

  /** Puts entries in L1 and writes them to Redis (a Redis failure is logged, the entries stay in L1). */
  async store(entries: readonly DataEntry[]): Promise<void> {
    for (const entry of entries) this.#put(entry);
    const l2 = this.l2;
    if (l2 === undefined || !l2.available || entries.length === 0) return;
    try {
      await l2.write(entries, this.now());
    } catch (error) {
      this.storeError(error);
    }
  }

  /**
   * Calls the loader under the key's fill lock (with Redis: one call per key across the
   * fleet; the others wait for its value in Redis, up to `lockTimeout`, then call it
   * themselves) and stores its value. `background`: give up at once when another instance
   * holds the lock (it refreshes).
   */
  async compute(
    key: string,
    fn: () => unknown,
    call: CallOptions,
    background: boolean,
    generation = this.generation,
  ): Promise<unknown | typeof SKIPPED> {
    const l2 = this.l2;
    let locked = false;
    if (l2?.available) {
      // Real time, not the cache's clock: the wait is for another process, not for an entry.
      const deadline = Date.now() + this.config.lockTimeout;
      let pause = 5;
      for (;;) {
        try {
          locked = await l2.store.lock(key, this.id, this.config.lockTimeout);
        } catch (error) {
          this.storeError(error);
          break;
        }
        if (locked) {
          // Another instance may have stored it between our read and our lock.
          if (!background) {
            const found = await this.readL2(key);
            if (found !== undefined && this.now() < found.expiresAt) {
              this.#unlock(key);
              return found.value;
            }
          }
          break;
        }
        if (background) return SKIPPED;
        // Not unref()ed: a caller is waiting for this value, bounded by lockTimeout.
        await sleep(pause);
        pause = Math.min(pause * 2, 50);
        const found = await this.readL2(key);
        if (found !== undefined && this.now() < found.expiresAt) return found.value;
        if (Date.now() >= deadline || !l2.available) break;
      }
    }
    try {
      const value = await fn();
      if (value !== undefined && generation === this.generation && !this.closed) {
        let entry: DataEntry | undefined;
        try {
          entry = this.makeEntry(key, value, call, this.now());
        } catch (error) {
          this.log.warnOnce(
            'DATA_CACHE_NOT_SERIALIZABLE',
            `the value of "${key.slice(0, 80)}" cannot be serialised (${error instanceof Error ? error.message : String(error)}): returned, not cached`,
          );
        }
        if (entry !== undefined) {
          // A load is an access too: it counts towards the warm-start ranking.
          if (this.tracking && entry.reads++ === 0) this.markRead(entry);
          await this.store([entry]);
        }
      }
      return value;
    } finally {
      if (locked) this.#unlock(key);
    }
  }

  #unlock(key: string): void {
    this.l2?.store.unlock(key, this.id).catch((error: unknown) => this.storeError(error));
  }

  /** One loader call per key in this process: joins the fill in flight or starts one. */
  fill(key: string, fn: () => unknown, call: CallOptions, generation = this.generation): Promise<unknown> {
    let flight = this.flights.get(key);
    if (flight !== undefined) return flight;
    flight = this.compute(key, fn, call, false, generation);
    this.flights.set(key, flight);
    const clear = () => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    };
    flight.then(clear, clear);
    return flight;
  }

  /**
   * Refreshes `key` in the background (stale-while-revalidate, refresh-ahead): at most one
   * per key in this process, and with Redis one in the fleet. Resolves true when it stored
   * a new value.
   */
  refresh(key: string, fn: () => unknown, call: CallOptions): Promise<boolean> {
    if (this.refreshing.has(key) || this.flights.has(key) || this.closed) return Promise.resolve(false);
    this.refreshing.add(key);
    return this.compute(key, fn, call, true).then(
      (value) => {
        this.refreshing.delete(key);
        return value !== SKIPPED;
      },
      (error: unknown) => {
        this.refreshing.delete(key);
        this.log.warnOnce(
          'DATA_CACHE_REFRESH_FAILED',
          `a background refresh of "${key.slice(0, 80)}" failed (${error instanceof Error ? error.message : String(error)}); the entry is served until it expires`,
        );
        return false;
      },
    );
  }

  // ------------------------------------------------------------------ invalidation

  /** Removes entries from this instance's memory; returns how many keys held something. */
  applyLocal(keys: readonly string[], tags: readonly string[], prefix: string | undefined): number {
    this.generation++;
    let removed = 0;
    for (const full of keys) {
      const at = this.locate(full);
      if (at !== undefined && at.space.store.delete(at.key) > 0) removed++;
    }
    for (const space of this.spaces.values()) {
      const store = space.store;
      for (const tag of tags) for (const key of store.keysForTag(tag)) if (store.delete(key) > 0) removed++;
      if (prefix === undefined) continue;
      // A prefix of full keys (`data:<namespace>:...`, or a response cache's): what it covers here.
      if (space.prefix.startsWith(prefix)) {
        removed += store.keys;
        store.clear();
      } else if (prefix.startsWith(space.prefix)) {
        for (const key of store.keysWithPrefix(prefix.slice(space.prefix.length))) if (store.delete(key) > 0) removed++;
      }
    }
    return removed;
  }

  /**
   * Removes entries here, then (with Redis) deletes them in Redis — response-cache records
   * with these tags too — and tells every instance through the invalidation stream; without
   * Redis, tells the caches linked in this process (the preset's response cache).
   */
  async invalidate(op: InvalidationOp): Promise<number> {
    const removed = this.applyLocal(op.keys, op.tags, op.prefix);
    if (op.tags.length > 0) for (const listener of this.tagListeners) listener(op.tags);
    const feed = this.feed;
    if (feed === undefined) return removed;
    const deleted = await feed.publish({ ...op, from: this.id });
    return Math.max(removed, deleted);
  }

  // ------------------------------------------------------------------ warm start

  /**
   * Loads the hottest entries (by read counts in Redis) into L1, fresh ones only
   * (store/hot-keys.ts: bounded wait for the connection, re-read after an invalidation);
   * resolves with how many entries were loaded.
   */
  #warmStart(): Promise<number> {
    const l2 = this.l2;
    const hot = this.hot;
    if (l2 === undefined || hot === undefined) return Promise.resolve(0);
    const { serializer, refreshAhead } = this.config;
    return warmStart(hot, {
      count: this.config.warmStart,
      read: (keys) => l2.readMany(keys, serializer, refreshAhead),
      load: (entries) => {
        const now = this.now();
        let loaded = 0;
        // The least read first: when they are more than L1 holds, the most read stay.
        for (const entry of entries.reverse()) {
          if (entry === undefined || now >= entry.expiresAt) continue;
          const at = entry.key.indexOf(':', DATA_PREFIX.length);
          if (!entry.key.startsWith(DATA_PREFIX) || at === -1) continue;
          const space = this.space(entry.key.slice(DATA_PREFIX.length, at));
          const key = entry.key.slice(at + 1);
          // A value stored here since the start is newer than Redis's copy read for the warm start.
          if (space.store.peek(key) !== undefined) continue;
          space.store.put(key, entry.asStored);
          space.warmStarted++;
          loaded++;
        }
        return loaded;
      },
      generation: () => this.generation,
      closed: () => this.closed,
    });
  }

  // ------------------------------------------------------------------ health and close

  health(): HealthCheck {
    return cacheHealth(this.entries, this.config.redis, this.feed?.health(), 'the loaders', false);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // The reads counted since the last flush still rank the next start.
    await this.hot?.close();
    this.closed = true;
    await this.feed?.close();
    for (const d of this.#disposables.splice(0)) d.dispose();
    this.tagListeners.clear();
    if (this.config.ownsRedis) await this.config.redis?.close();
  }
}

export { SKIPPED };
