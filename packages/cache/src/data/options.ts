/**
 * Options of `createCache()` (the data cache), resolved once into a fully-required config
 * (ARCHITECTURE.md rule 2). Nothing here runs per call.
 */
import {
  checkOptionsObject,
  consoleLogger,
  createSharedRedis,
  isRedisClient,
  optionRangeError,
  optionTypeError,
  type PerfstackLogger,
  parseBytes,
  parseDuration,
  type RedisClient,
  type Registry,
  readFunction,
  readInteger,
  readString,
  type SharedContext,
  SharedRedis,
} from '@perfstack/core';
import { PKG } from '../options.js';
import { DEFAULT_EVICTION, type EvictionPolicy } from '../store/memory.js';
import { isSerializer, jsonSerializer, type Serializer } from './serializer.js';

/** Options of {@link createCache}. Every option is optional. */
export interface DataCacheOptions extends Omit<SharedContext, 'redis'> {
  /**
   * The namespace of the cache `createCache()` returns: its keys live under
   * `data:<namespace>:` in memory and in Redis, and its numbers are shown apart.
   * `cache.namespace(name)` gives more on the same memory and connection.
   * @default 'default'
   */
  readonly namespace?: string;
  /** How long an entry stays fresh when `set`/`wrap` do not say. @default '5m' */
  readonly ttl?: number | string;
  /**
   * How long past its lifetime `wrap()` may still answer with an entry while one call
   * refreshes it in the background (per call: `wrap(key, fn, { staleWhileRevalidate })`).
   * @default 0
   */
  readonly staleWhileRevalidate?: number | string;
  /** Most entries kept in memory (L1) per namespace. @default 10000 */
  readonly maxEntries?: number;
  /** Most bytes kept in memory per namespace (serialised size of the values + bookkeeping). @default '64mb' */
  readonly maxBytes?: number | string;
  /**
   * What goes when a namespace's memory is full: `'tinylfu'` (W-TinyLFU: a new entry is
   * admitted only if it is likely to be read more than the one it would push out) or
   * `'lru'` — the response cache's policies (store/memory.ts). @default 'tinylfu'
   */
  readonly eviction?: EvictionPolicy;
  /** Largest serialised value stored; larger values are returned but not cached. @default '1mb' */
  readonly maxEntryBytes?: number | string;
  /** Turns values into text for Redis and for the size bound. @default JSON, Buffers kept */
  readonly serializer?: Serializer;
  /**
   * Refresh-ahead: a `wrap()` entry read at least `refreshAheadHits` times after this
   * fraction of its lifetime is refreshed in the background before it expires
   * (`0.8`: in its last fifth). `false` turns it off.
   * @default 0.8
   */
  readonly refreshAhead?: number | false;
  /** Reads in the last part of the lifetime that trigger a refresh-ahead. @default 2 */
  readonly refreshAheadHits?: number;
  /**
   * With Redis: how many of the most read entries (counted in Redis) a new instance loads
   * into memory when it starts (`cache.ready` resolves when done). 0 turns it off.
   * @default 100
   */
  readonly warmStart?: number;
  /**
   * With Redis: how often the read counts gathered in memory are added to Redis (one
   * pipelined `ZINCRBY` batch per interval, never a round trip per read).
   * @default '5s'
   */
  readonly accessFlushInterval?: number | string;
  /** With Redis: how long one instance may hold a key's fill lock (the others wait for its value). @default '10s' */
  readonly lockTimeout?: number | string;
  /** Time limit of each Redis call. @default '200ms' */
  readonly redisTimeout?: number | string;
  /** Redis as a {@link SharedRedis}, a `redis://` URL or a node-redis client. @default none (memory only) */
  readonly redis?: SharedRedis | string | RedisClient;
  /** The clock, ms since the epoch (tests move it by hand). @default Date.now */
  readonly now?: () => number;
}

/** What the cache reads at run time. */
export interface DataCacheConfig {
  readonly namespace: string;
  readonly ttl: number;
  readonly staleWhileRevalidate: number;
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly eviction: EvictionPolicy;
  readonly maxEntryBytes: number;
  readonly serializer: Serializer;
  /** 0 = off. */
  readonly refreshAhead: number;
  readonly refreshAheadHits: number;
  readonly warmStart: number;
  readonly accessFlushInterval: number;
  readonly lockTimeout: number;
  readonly redisTimeout: number;
  readonly redis: SharedRedis | undefined;
  readonly ownsRedis: boolean;
  readonly registry: Registry | undefined;
  readonly logger: PerfstackLogger;
  readonly now: () => number;
}

const KNOWN = [
  'namespace',
  'ttl',
  'staleWhileRevalidate',
  'maxEntries',
  'maxBytes',
  'eviction',
  'maxEntryBytes',
  'serializer',
  'refreshAhead',
  'refreshAheadHits',
  'warmStart',
  'accessFlushInterval',
  'lockTimeout',
  'redisTimeout',
  'redis',
  'registry',
  'logger',
  'now',
];

/** A namespace: 1 to 64 characters, no `:` (it separates the namespace from the key). */
export function readNamespace(option: string, value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^[^:\s]{1,64}$/.test(value)) {
    throw optionTypeError(PKG, option, value, 'a string of 1 to 64 characters without ":" or spaces');
  }
  return value;
}

/**
 * Resolves {@link DataCacheOptions}.
 *
 * @throws {TypeError|RangeError} naming the bad option
 */
export function resolveDataOptions(options: DataCacheOptions | undefined): DataCacheConfig {
  const o = checkOptionsObject(PKG, 'createCache', options, KNOWN) as DataCacheOptions;
  const duration = (value: unknown, name: string, fallback: number, min = 0) =>
    value === undefined ? fallback : parseDuration(value, name, { pkg: PKG, min });
  const bytes = (value: unknown, name: string, fallback: number, min = 1) =>
    value === undefined ? fallback : parseBytes(value, name, { pkg: PKG, min });
  const maxBytes = bytes(o.maxBytes, 'maxBytes', 64 * 1024 * 1024);
  const maxEntryBytes = bytes(o.maxEntryBytes, 'maxEntryBytes', Math.min(1024 * 1024, maxBytes));
  if (maxEntryBytes > maxBytes) {
    throw optionRangeError(PKG, 'maxEntryBytes', o.maxEntryBytes, `at most maxBytes (${maxBytes} bytes)`);
  }
  const serializer = o.serializer ?? jsonSerializer;
  if (!isSerializer(serializer)) {
    throw optionTypeError(PKG, 'serializer', serializer, 'an object with serialize() and deserialize()');
  }
  let refreshAhead = 0.8;
  if (o.refreshAhead === false) refreshAhead = 0;
  else if (o.refreshAhead !== undefined) {
    if (typeof o.refreshAhead !== 'number' || !(o.refreshAhead > 0 && o.refreshAhead < 1)) {
      throw optionRangeError(PKG, 'refreshAhead', o.refreshAhead, 'false or a number above 0 and below 1');
    }
    refreshAhead = o.refreshAhead;
  }
  const logger = o.logger ?? consoleLogger;
  if (typeof logger !== 'object' || typeof logger.warn !== 'function' || typeof logger.error !== 'function') {
    throw optionTypeError(PKG, 'logger', logger, 'an object with warn() and error()');
  }
  const registry = o.registry;
  if (registry !== undefined && (typeof registry !== 'object' || typeof registry.getSingleMetric !== 'function')) {
    throw optionTypeError(PKG, 'registry', registry, 'a prom-client Registry');
  }
  let redis: SharedRedis | undefined;
  let ownsRedis = false;
  const raw: unknown = o.redis;
  if (raw instanceof SharedRedis) redis = raw;
  else if (typeof raw === 'string' || isRedisClient(raw)) {
    redis = createSharedRedis(typeof raw === 'string' ? { url: raw, logger } : { client: raw as RedisClient, logger });
    ownsRedis = true;
  } else if (raw !== undefined) {
    throw optionTypeError(PKG, 'redis', raw, 'a SharedRedis, a redis:// URL or a node-redis client');
  }
  return {
    namespace: readNamespace('namespace', o.namespace, 'default'),
    ttl: duration(o.ttl, 'ttl', 300_000, 1),
    staleWhileRevalidate: duration(o.staleWhileRevalidate, 'staleWhileRevalidate', 0),
    maxEntries: readInteger(PKG, 'maxEntries', o.maxEntries, 10_000, 1, 100_000_000),
    maxBytes,
    eviction: readString<EvictionPolicy>(PKG, 'eviction', o.eviction, DEFAULT_EVICTION, ['tinylfu', 'lru']),
    maxEntryBytes,
    serializer,
    refreshAhead,
    refreshAheadHits: readInteger(PKG, 'refreshAheadHits', o.refreshAheadHits, 2, 1, 1_000_000),
    warmStart: readInteger(PKG, 'warmStart', o.warmStart, 100, 0, 100_000),
    accessFlushInterval: duration(o.accessFlushInterval, 'accessFlushInterval', 5000, 10),
    lockTimeout: duration(o.lockTimeout, 'lockTimeout', 10_000, 1),
    redisTimeout: duration(o.redisTimeout, 'redisTimeout', 200, 1),
    redis,
    ownsRedis,
    registry,
    logger,
    now: readFunction<() => number>(PKG, 'now', o.now, Date.now),
  };
}

/** Per-call options of `set()` and `wrap()`. */
export interface SetOptions {
  /** Lifetime of this entry. @default the cache's `ttl` */
  readonly ttl?: number | string;
  /** Tags to invalidate it by (shared with the response cache: one tag bus). @default [] */
  readonly tags?: readonly string[];
}

/** Per-call options of `wrap()`. */
export interface WrapOptions extends SetOptions {
  /** How long past its lifetime the entry may answer while it is refreshed. @default the cache's */
  readonly staleWhileRevalidate?: number | string;
}

/** A checked per-call option set. */
export interface CallOptions {
  readonly ttl: number;
  readonly tags: readonly string[];
  readonly staleWhileRevalidate: number;
}

const EMPTY: readonly string[] = Object.freeze([]);

/** Resolves per-call options against the config (TypeError/RangeError on bad values). */
export function resolveCall(config: DataCacheConfig, options: WrapOptions | undefined, method: string): CallOptions {
  if (options === undefined) return { ttl: config.ttl, tags: EMPTY, staleWhileRevalidate: config.staleWhileRevalidate };
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${PKG}: ${method}() options must be an object, got ${typeof options}`);
  }
  const ttl = options.ttl === undefined ? config.ttl : parseDuration(options.ttl, 'ttl', { pkg: PKG, min: 1 });
  const swr =
    options.staleWhileRevalidate === undefined
      ? config.staleWhileRevalidate
      : parseDuration(options.staleWhileRevalidate, 'staleWhileRevalidate', { pkg: PKG });
  const tags = options.tags;
  if (tags === undefined) return { ttl, tags: EMPTY, staleWhileRevalidate: swr };
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string' || t === '' || t.length > 256)) {
    throw new TypeError(
      `${PKG}: ${method}() option "tags" must be an array of non-empty strings (at most 256 characters)`,
    );
  }
  return { ttl, tags: tags.length === 0 ? EMPTY : Object.freeze([...new Set(tags)]), staleWhileRevalidate: swr };
}

/** Keys: non-empty strings of at most 1024 characters. */
export function checkKey(key: unknown, method: string): string {
  if (typeof key !== 'string' || key === '' || key.length > 1024) {
    throw new TypeError(
      `${PKG}: ${method}() key must be a string of 1 to 1024 characters, got ${typeof key === 'string' ? `"${key.slice(0, 40)}"` : typeof key}`,
    );
  }
  return key;
}
