/**
 * `createCache()`: the data cache — values an application computes (database rows, API
 * answers, rendered fragments), on the same engine as the response cache: the same memory
 * store (L1), the same Redis connection and key space (L2), the same tag index and the
 * same invalidation stream, so `invalidate({ tags })` on either cache clears both, on
 * every instance.
 *
 * A `wrap()` that finds a fresh entry in memory is one `Map` read, one clock read and two
 * comparisons (benchmarks/data-cache.js); everything else is off that path.
 */
import type { DataCacheSource, DataCacheStats, DataNamespaceStats, HealthCheck } from '@perfstack/core';
import { PKG } from '../options.js';
import { type DataEngine, DataEngine as Engine, type Space } from './engine.js';
import type { DataEntry } from './entry.js';
import { registerMetrics } from './metrics.js';
import {
  checkKey,
  type DataCacheConfig,
  type DataCacheOptions,
  readNamespace,
  resolveCall,
  resolveDataOptions,
  type SetOptions,
  type WrapOptions,
} from './options.js';

/** Most namespaces one cache serves (their names are metric labels). */
export const MAX_NAMESPACES = 100;

/** What `invalidate()` takes: one of a key, tags or a key prefix. */
export type DataInvalidateSelector =
  | { readonly key: string; readonly tags?: undefined; readonly prefix?: undefined }
  | { readonly tags: readonly string[]; readonly key?: undefined; readonly prefix?: undefined }
  | { readonly prefix: string; readonly key?: undefined; readonly tags?: undefined };

/** One entry of `setMany()`. */
export interface SetManyEntry<T = unknown> extends SetOptions {
  readonly key: string;
  readonly value: T;
}

/** A loader for `warm()`: called for each key not already fresh. */
export type WarmLoader = (key: string) => unknown;

const ratio = (hits: number, misses: number) => (hits + misses === 0 ? 0 : hits / (hits + misses));

function spaceStats(c: Space): DataNamespaceStats {
  return {
    entries: c.store.entries,
    bytes: c.store.bytes,
    evictions: c.evictions,
    hits: c.hits,
    misses: c.misses,
    stale: c.stale,
    hitRatio: ratio(c.hits + c.stale, c.misses),
    refreshesAhead: c.refreshesAhead,
    warmStarted: c.warmStarted,
  };
}

/** A namespace of the data cache: what `createCache()` and `cache.namespace(name)` return. */
export class DataCache implements DataCacheSource {
  /** This namespace's name. */
  readonly name: string;
  readonly #engine: DataEngine;
  readonly #prefix: string;
  readonly #counters: Space;
  readonly #store: Space['store'];
  readonly #spaces: Map<string, DataCache>;

  /** @internal use {@link createCache} */
  constructor(engine: DataEngine, name: string, spaces: Map<string, DataCache>) {
    this.#engine = engine;
    this.name = name;
    this.#counters = engine.space(name);
    this.#prefix = this.#counters.prefix;
    this.#store = this.#counters.store;
    this.#spaces = spaces;
  }

  /**
   * With Redis, resolves once the hottest entries were loaded into memory at start (warm
   * start), with how many; at once with 0 otherwise. Calls made before then are served too.
   */
  get ready(): Promise<number> {
    return this.#engine.ready;
  }

  /**
   * Another namespace on the same memory, connection and tag bus: its keys cannot collide
   * with this one's, and it is counted apart.
   *
   * @throws {TypeError} for a name that is not 1–64 characters without `:` or spaces
   * @throws {RangeError} past {@link MAX_NAMESPACES} namespaces
   */
  namespace(name: string): DataCache {
    const known = this.#spaces.get(name);
    if (known !== undefined) return known;
    readNamespace('namespace', name, '');
    if (this.#spaces.size >= MAX_NAMESPACES) {
      throw new RangeError(`${PKG}: a data cache serves at most ${MAX_NAMESPACES} namespaces`);
    }
    const space = new DataCache(this.#engine, name, this.#spaces);
    this.#spaces.set(name, space);
    return space;
  }

  /**
   * The value stored under `key`, or undefined. Looks in memory, then in Redis (which fills
   * memory). Entries past their lifetime are not returned.
   */
  async get<T = unknown>(key: string): Promise<T | undefined> {
    checkKey(key, 'get');
    const engine = this.#engine;
    const now = engine.now();
    const entry = engine.peekL1(this.#counters, key, now) ?? (await engine.readL2(this.#prefix + key));
    if (entry !== undefined && engine.now() < entry.expiresAt) {
      this.#hit(entry);
      return entry.value as T;
    }
    this.#counters.misses++;
    return undefined;
  }

  /** The values of `keys`, in order (undefined for a miss): memory first, then one `MGET`. */
  async getMany<T = unknown>(keys: readonly string[]): Promise<(T | undefined)[]> {
    if (!Array.isArray(keys)) throw new TypeError(`${PKG}: getMany() takes an array of keys`);
    const engine = this.#engine;
    const now = engine.now();
    const fulls = keys.map((key) => this.#prefix + checkKey(key, 'getMany'));
    const out: (T | undefined)[] = new Array(keys.length);
    const missing: number[] = [];
    keys.forEach((key, i) => {
      const entry = engine.peekL1(this.#counters, key, now);
      if (entry !== undefined && now < entry.expiresAt) {
        this.#hit(entry);
        out[i] = entry.value as T;
      } else missing.push(i);
    });
    if (missing.length > 0) {
      const found = await engine.readManyL2(missing.map((i) => fulls[i] as string));
      const later = engine.now();
      missing.forEach((i, j) => {
        const entry = found[j];
        if (entry !== undefined && later < entry.expiresAt) {
          this.#hit(entry);
          out[i] = entry.value as T;
        } else {
          this.#counters.misses++;
          out[i] = undefined;
        }
      });
    }
    return out;
  }

  /**
   * Stores `value` under `key` for `ttl`, under `tags`. With Redis the value is written
   * there too and every other instance drops its memory copy of the key. Resolves false
   * (not stored) when the serialised value is larger than `maxEntryBytes`; `undefined` is
   * never stored.
   *
   * @throws {TypeError} (rejects) on a bad key or option, or a value the serializer refuses
   */
  async set<T>(key: string, value: T, options?: SetOptions): Promise<boolean> {
    return (await this.setMany([{ key, value, ...options }])) === 1;
  }

  /** Stores several values (one Redis round trip); resolves with how many were stored. */
  async setMany(entries: readonly SetManyEntry[]): Promise<number> {
    if (!Array.isArray(entries)) throw new TypeError(`${PKG}: setMany() takes an array of { key, value, ttl?, tags? }`);
    const engine = this.#engine;
    const now = engine.now();
    const made: DataEntry[] = [];
    for (const item of entries) {
      if (typeof item !== 'object' || item === null)
        throw new TypeError(`${PKG}: setMany() entries are { key, value, ttl?, tags? }`);
      const full = this.#prefix + checkKey(item.key, 'set');
      const call = resolveCall(engine.config, { ttl: item.ttl, tags: item.tags, staleWhileRevalidate: 0 }, 'set');
      if (item.value === undefined) continue;
      const entry = engine.makeEntry(full, item.value, call, now);
      if (entry !== undefined) made.push(entry);
    }
    if (made.length === 0) return 0;
    // Other instances may hold an older copy in memory: they drop it (our own stream message is skipped).
    if (engine.feed !== undefined) {
      engine.generation++;
      await engine.feed.publish({ keys: made.map((e) => e.key), tags: [], prefix: undefined, from: engine.id });
    }
    await engine.store(made);
    return made.length;
  }

  /** Removes `key` here, in Redis and on every instance; resolves true when it was stored. */
  async delete(key: string): Promise<boolean> {
    const full = this.#prefix + checkKey(key, 'delete');
    return (await this.#engine.invalidate({ keys: [full], tags: [], prefix: undefined })) > 0;
  }

  /**
   * The value under `key`; on a miss, `fn()`'s, stored for `ttl` under `tags`. One call of
   * `fn` per key at a time in this process, and with Redis in the fleet (the others wait
   * for its value, up to `lockTimeout`). An entry past its lifetime but within
   * `staleWhileRevalidate` is returned while one call refreshes it; an entry read
   * `refreshAheadHits` times in its last part (`refreshAhead`) is refreshed before it
   * expires. A value `fn` returns is stored unless it is undefined or an invalidation
   * happened while `fn` ran; an error `fn` throws is passed on and nothing is stored.
   */
  wrap<T>(key: string, fn: () => T | Promise<T>, options?: WrapOptions): Promise<T> {
    const engine = this.#engine;
    if (typeof key === 'string') {
      const entry = this.#store.get(key) as DataEntry | undefined;
      if (entry !== undefined) {
        const now = engine.config.now();
        if (now < entry.expiresAt) {
          this.#counters.hits++;
          if (engine.tracking && entry.reads++ === 0) engine.markRead(entry);
          if (now >= entry.refreshAt) this.#lateRead(entry, fn, options);
          return Promise.resolve(entry.value as T);
        }
      }
    }
    return this.#wrapSlow(key, fn, options);
  }

  async #wrapSlow<T>(key: string, fn: () => T | Promise<T>, options: WrapOptions | undefined): Promise<T> {
    const full = this.#prefix + checkKey(key, 'wrap');
    if (typeof fn !== 'function') throw new TypeError(`${PKG}: wrap() takes a function that computes the value`);
    const engine = this.#engine;
    const call = resolveCall(engine.config, options, 'wrap');
    // An invalidation from now on means fn's value may be older than it: returned, not stored.
    const generation = engine.generation;
    const counters = this.#counters;
    let entry = engine.peekL1(this.#counters, key, engine.now());
    if (entry === undefined && !engine.flights.has(full)) entry = await engine.readL2(full);
    if (entry !== undefined) {
      const now = engine.now();
      if (now < entry.expiresAt) {
        this.#hit(entry);
        return entry.value as T;
      }
      if (now < entry.staleUntil) {
        counters.stale++;
        void engine.refresh(full, fn, call);
        return entry.value as T;
      }
    }
    counters.misses++;
    return (await engine.fill(full, fn, call, generation)) as T;
  }

  #hit(entry: DataEntry): void {
    this.#counters.hits++;
    if (this.#engine.tracking && entry.reads++ === 0) this.#engine.markRead(entry);
  }

  /** A read in the entry's last part of life: the `refreshAheadHits`-th starts a refresh. */
  #lateRead(entry: DataEntry, fn: () => unknown, options: WrapOptions | undefined): void {
    if (entry.refreshing || ++entry.lateReads < this.#engine.config.refreshAheadHits) return;
    entry.refreshing = true;
    let call: ReturnType<typeof resolveCall>;
    try {
      call = resolveCall(this.#engine.config, options, 'wrap');
    } catch {
      return;
    }
    const counters = this.#counters;
    void this.#engine.refresh(entry.key, fn, call).then((stored) => {
      if (stored) counters.refreshesAhead++;
      else entry.refreshing = false;
    });
  }

  /**
   * Removes entries by key or key prefix (in this namespace), or by tags (in every
   * namespace and in the response cache: one tag bus), here, in Redis and on every
   * instance. Resolves with the number of keys removed.
   *
   * @throws {TypeError} (rejects) unless given exactly one of `{ key }`, `{ tags }`, `{ prefix }`
   */
  async invalidate(selector: DataInvalidateSelector): Promise<number> {
    if (typeof selector !== 'object' || selector === null) {
      throw new TypeError(`${PKG}: invalidate() takes { key } | { tags } | { prefix }`);
    }
    const { key, tags, prefix } = selector as { key?: unknown; tags?: unknown; prefix?: unknown };
    const given = [key, tags, prefix].filter((v) => v !== undefined).length;
    if (
      given !== 1 ||
      (key !== undefined && (typeof key !== 'string' || key === '')) ||
      (prefix !== undefined && (typeof prefix !== 'string' || prefix === '')) ||
      (tags !== undefined &&
        (!Array.isArray(tags) || tags.length === 0 || tags.some((t) => typeof t !== 'string' || t === '')))
    ) {
      throw new TypeError(
        `${PKG}: invalidate() takes one of { key: string } | { tags: string[] } | { prefix: non-empty string }`,
      );
    }
    return this.#engine.invalidate({
      keys: typeof key === 'string' ? [this.#prefix + key] : [],
      tags: Array.isArray(tags) ? [...new Set(tags as string[])] : [],
      prefix: typeof prefix === 'string' ? this.#prefix + prefix : undefined,
    });
  }

  /**
   * Fills entries on demand. With a loader, `warm(keys, load)` stores `load(key)` for every
   * key not already fresh in memory (as `wrap` would, with `options`); without one, it
   * loads the keys from Redis into memory. Resolves with how many keys are now in memory.
   */
  async warm(keys: readonly string[], load?: WarmLoader, options?: WrapOptions): Promise<number> {
    if (!Array.isArray(keys)) throw new TypeError(`${PKG}: warm() takes an array of keys`);
    if (load !== undefined && typeof load !== 'function')
      throw new TypeError(`${PKG}: warm() loader must be a function`);
    const engine = this.#engine;
    const fulls = keys.map((key) => this.#prefix + checkKey(key, 'warm'));
    const now = engine.now();
    const absent = fulls.filter((_full, i) => {
      const entry = engine.peekL1(this.#counters, keys[i] as string, now);
      return entry === undefined || now >= entry.expiresAt;
    });
    const found = await engine.readManyL2(absent);
    let warmed =
      fulls.length - absent.length + found.filter((e) => e !== undefined && engine.now() < e.expiresAt).length;
    if (load !== undefined) {
      const call = resolveCall(engine.config, options, 'warm');
      const loads: Promise<unknown>[] = [];
      absent.forEach((full, i) => {
        const entry = found[i];
        if (entry !== undefined && engine.now() < entry.expiresAt) return;
        const key = full.slice(this.#prefix.length);
        loads.push(engine.fill(full, () => load(key), call).then(() => warmed++));
      });
      await Promise.all(loads);
    }
    return warmed;
  }

  /** This cache's numbers: memory totals and every namespace's counters. */
  stats(): DataCacheStats {
    return dataStats(this.#engine);
  }

  /** `ok`, or `degraded` while a configured Redis is down or does not answer. */
  health(): HealthCheck {
    return this.#engine.health();
  }

  /**
   * Closes the cache (every namespace): adds the last read counts to Redis, stops the
   * invalidation reader and the timers, and closes a Redis connection the cache made itself.
   */
  close(): Promise<void> {
    return this.#engine.close();
  }

  /** @internal the shared engine (the tag bus link and the metrics read it) */
  get engine(): DataEngine {
    return this.#engine;
  }
}

/** The numbers of a data cache. */
export function dataStats(engine: DataEngine): DataCacheStats {
  let hits = 0;
  let misses = 0;
  let stale = 0;
  let refreshesAhead = 0;
  let warmStarted = 0;
  const namespaces: [string, DataNamespaceStats][] = [];
  for (const [name, c] of engine.spaces) {
    hits += c.hits;
    misses += c.misses;
    stale += c.stale;
    refreshesAhead += c.refreshesAhead;
    warmStarted += c.warmStarted;
    namespaces.push([name, spaceStats(c)]);
  }
  return {
    hits,
    misses,
    stale,
    hitRatio: ratio(hits + stale, misses),
    refreshesAhead,
    warmStarted,
    entries: engine.entries,
    bytes: engine.bytes,
    evictions: engine.evictions,
    namespaces: Object.fromEntries(namespaces),
  };
}

/**
 * Makes a data cache: in memory, or with `redis` in memory (L1) and Redis (L2) on the
 * shared connection.
 *
 * @param options see {@link DataCacheOptions}; all optional
 * @returns the cache's first namespace (`namespace`, default `'default'`)
 * @throws {TypeError|RangeError} on a bad or unknown option, naming it
 * @example
 * const data = createCache({ redis: process.env.REDIS_URL, ttl: '10m' });
 * const user = await data.wrap(`user:${id}`, () => db.users.find(id), { tags: ['users'] });
 * await data.invalidate({ tags: ['users'] });
 */
export function createCache(options?: DataCacheOptions): DataCache {
  const config: DataCacheConfig = resolveDataOptions(options);
  const engine = new Engine(config);
  if (config.registry !== undefined) registerMetrics(config.registry, engine);
  const spaces = new Map<string, DataCache>();
  const first = new DataCache(engine, config.namespace, spaces);
  spaces.set(config.namespace, first);
  return first;
}

/** True for what {@link createCache} returned. */
export function isDataCache(value: unknown): value is DataCache {
  return value instanceof DataCache;
}
