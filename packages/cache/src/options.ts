/**
 * Options of `responseCache()` and `cache()`, resolved once into a fully-required
 * config (ARCHITECTURE.md rule 2). Nothing here runs per request.
 */
import type { IncomingMessage } from 'node:http';
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
  readBoolean,
  readFunction,
  readInteger,
  readString,
  readStringArray,
  type SharedContext,
  SharedRedis,
} from '@perfstack/core';

import type { HeuristicPolicy } from './freshness.js';
import { DEFAULT_EVICTION, type EvictionPolicy } from './store/memory.js';

export const PKG = '@perfstack/cache';

/**
 * Statuses stored without explicit freshness (heuristic, `public`, a route's ttl): RFC 9110
 * §15.1's heuristically cacheable statuses, minus 206 (partial responses are never stored).
 * Any other final status is stored only with explicit freshness (`max-age`, `Expires`...).
 */
export const DEFAULT_STATUSES: readonly number[] = [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/** Options of {@link responseCache}. Every option is optional. */
export interface ResponseCacheOptions extends Omit<SharedContext, 'redis'> {
  /** Freshness lifetime of a stored response when neither the route nor the response says. @default '1m' */
  readonly ttl?: number | string;
  /** Most entries (URLs) kept in memory (L1). @default 10000 */
  readonly maxEntries?: number;
  /** Most bytes kept in memory (bodies + headers + bookkeeping). @default '64mb' */
  readonly maxBytes?: number | string;
  /**
   * What leaves memory (L1) when `maxEntries` or `maxBytes` is reached: `'tinylfu'`
   * (W-TinyLFU: a new entry gets in only if it was requested more often recently than the
   * entry it would push out, so scans and one-off URLs do not flush popular ones) or
   * `'lru'` (least recently used goes). Both enforce the bounds exactly. @default 'tinylfu'
   */
  readonly eviction?: EvictionPolicy;
  /** Largest body that is buffered and stored; larger responses stream through uncached. @default '1mb' */
  readonly maxEntryBytes?: number | string;
  /** Default RFC 5861 `stale-while-revalidate` window. @default 0 */
  readonly staleWhileRevalidate?: number | string;
  /** Default RFC 5861 `stale-if-error` window. @default 0 */
  readonly staleIfError?: number | string;
  /**
   * Statuses stored without explicit freshness (heuristic freshness, `public`, a route's
   * ttl); any final status but 206 is stored when the response gives explicit freshness.
   * @default [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]
   */
  readonly statuses?: readonly number[];
  /**
   * Heuristic freshness (RFC 9111 §4.2.2) for responses with `Last-Modified` and no explicit
   * freshness: `fraction` of the time since Last-Modified, at most `max`; false for none.
   * @default { fraction: 0.1, max: '1d' }
   */
  readonly heuristicFreshness?: { readonly fraction?: number; readonly max?: number | string } | false;
  /**
   * A targeted cache-control field for this cache (RFC 9213), e.g. `'Perfstack-Cache-Control'`
   * or `'Surrogate-Control'`; it takes precedence over `CDN-Cache-Control`, which takes
   * precedence over `Cache-Control`. @default none (only `CDN-Cache-Control`)
   */
  readonly targetedCacheControl?: string;
  /** Leave the targeted fields on responses (for a CDN in front). @default false (removed) */
  readonly forwardTargetedCacheControl?: boolean;
  /** Coding used to store compressible bodies, or false. @default 'br' */
  readonly compression?: 'br' | 'gzip' | false;
  /** Bodies at least this large are stored compressed. @default '1400b' */
  readonly compressThreshold?: number | string;
  /** Requests for which the layer does nothing at all (no lookup, no `X-Cache`). @default none */
  readonly skip?: (req: IncomingMessage) => boolean;
  /**
   * Honour request Cache-Control (RFC 9111 §5.2.1): `no-cache`/`max-age=0` (revalidate),
   * `max-age`, `min-fresh`, `max-stale`, `only-if-cached` (memory, then Redis; 504 when
   * nothing is stored) and
   * `no-store` (bypass). @default false
   */
  readonly requestCacheControl?: boolean;
  /** Longest a request waits for another request (or instance) fetching the same key. @default '5s' */
  readonly lockTimeout?: number | string;
  /** Time limit of each L2 (Redis) call; past it the call counts as failed. @default '200ms' */
  readonly redisTimeout?: number | string;
  /** How long a URL whose response was not storable skips request collapsing ("hit-for-pass"). @default '10s' */
  readonly hitForPass?: number | string;
  /**
   * Fleet (with Redis): keep serving memory (L1) hits while this instance's invalidation
   * feed has not been read for longer than its bound (`500 ms + 5 × redisTimeout`: Redis
   * paused, down, or unreachable from here only). `false`: such entries are not served as
   * fresh until the feed is current again (the origin answers; stale-if-error still
   * applies), so an invalidation made elsewhere is never outlived by more than the bound.
   * @default true
   */
  readonly serveMemoryWhenStalled?: boolean;
  /**
   * With Redis: how many of the most read URLs (read counts kept in Redis, per URL with
   * all its variants) a new instance loads into memory when it starts, fresh entries only
   * (`responses.ready` resolves when done; requests are served meanwhile). 0 turns it off,
   * and reads are then not counted. The data cache's option of the same name.
   * @default 100
   */
  readonly warmStart?: number;
  /**
   * With Redis: how often the read counts gathered in memory are added to Redis (one
   * pipelined `ZINCRBY` batch per interval, never a round trip per request).
   * @default '5s'
   */
  readonly accessFlushInterval?: number | string;
  /** Clock in ms since the epoch (tests). @default Date.now */
  readonly now?: () => number;
  /** Redis as a {@link SharedRedis}, a `redis://` URL or a node-redis client. @default none (L1 only) */
  readonly redis?: SharedRedis | string | RedisClient;
  /**
   * Without Redis: a bus that carries this cache's invalidations (`invalidate()`, unsafe
   * methods, the dashboard's purges) to the other processes of the machine and theirs to this
   * one — `performanceStack()` passes `perfstack/cluster`'s channel in every worker. Ignored
   * when `redis` is set (Redis's durable invalidation stream does it). @default none
   */
  readonly fleetBus?: CacheFleetBus;
}

/** The transport of {@link ResponseCacheOptions.fleetBus}: fire-and-forget publish, and a subscription. */
export interface CacheFleetBus {
  publish(channel: string, message: string): unknown;
  subscribe(channel: string, listener: (message: string) => void): { dispose(): void };
}

/** Per-route options of `cache()` and `@Cacheable()`. */
export interface RouteCacheOptions {
  /** Freshness lifetime for this route (the response's `s-maxage`/`max-age` override it). @default the layer's `ttl` */
  readonly ttl?: number | string;
  /** Tags to invalidate this route's entries by. @default [] */
  readonly tags?: readonly string[];
  /** Cache key: a string, or a function of the request. @default the request URL */
  readonly key?: string | ((req: IncomingMessage) => string);
  /** Request headers the response varies on (added to `Vary`). @default [] */
  readonly vary?: readonly string[];
  /** `stale-while-revalidate` window for this route. @default the layer's */
  readonly staleWhileRevalidate?: number | string;
  /** `stale-if-error` window for this route. @default the layer's */
  readonly staleIfError?: number | string;
  /** When false, responses to requests with `Authorization`/`Cookie` may be stored and shared. @default true */
  readonly private?: boolean;
  /**
   * The route's `ttl` wins over the response's freshness (`s-maxage`, `max-age`, `Expires`,
   * heuristics, `no-cache`), like nginx's `proxy_ignore_headers`. `no-store`, `private` and
   * the credential rules still apply. @default false
   */
  readonly overrideFreshness?: boolean;
  /** The cache instance to use when no global `responseCache()` runs. @default a shared in-memory instance */
  readonly store?: unknown;
}

/** The resolved config of a cache instance. */
export interface CacheConfig {
  readonly ttl: number;
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly eviction: EvictionPolicy;
  readonly maxEntryBytes: number;
  readonly staleWhileRevalidate: number;
  readonly staleIfError: number;
  readonly statuses: ReadonlySet<number>;
  readonly heuristic: HeuristicPolicy | false;
  /** Targeted field names, most specific first, lower case (RFC 9213). */
  readonly targeted: readonly string[];
  readonly forwardTargeted: boolean;
  readonly compression: 'br' | 'gzip' | false;
  readonly compressThreshold: number;
  readonly skip: ((req: IncomingMessage) => boolean) | undefined;
  readonly requestCacheControl: boolean;
  readonly lockTimeout: number;
  readonly redisTimeout: number;
  readonly hitForPass: number;
  readonly serveMemoryWhenStalled: boolean;
  /** 0 = off. */
  readonly warmStart: number;
  readonly accessFlushInterval: number;
  readonly now: () => number;
  readonly registry: Registry | undefined;
  readonly redis: SharedRedis | undefined;
  readonly fleetBus: CacheFleetBus | undefined;
  /** True when this instance made the connection and must close it. */
  readonly ownsRedis: boolean;
  readonly logger: PerfstackLogger;
}

/** The resolved options of one route. */
export interface RouteConfig {
  readonly ttl: number | undefined;
  readonly tags: readonly string[];
  readonly key: ((req: IncomingMessage) => string) | undefined;
  readonly vary: readonly string[];
  readonly staleWhileRevalidate: number | undefined;
  readonly staleIfError: number | undefined;
  readonly private: boolean;
  readonly overrideFreshness: boolean;
}

const KNOWN: readonly string[] = [
  'ttl',
  'maxEntries',
  'maxBytes',
  'eviction',
  'maxEntryBytes',
  'staleWhileRevalidate',
  'staleIfError',
  'statuses',
  'heuristicFreshness',
  'targetedCacheControl',
  'forwardTargetedCacheControl',
  'compression',
  'compressThreshold',
  'skip',
  'requestCacheControl',
  'lockTimeout',
  'redisTimeout',
  'hitForPass',
  'serveMemoryWhenStalled',
  'warmStart',
  'accessFlushInterval',
  'now',
  'registry',
  'redis',
  'fleetBus',
  'logger',
];

const ROUTE_KNOWN: readonly string[] = [
  'ttl',
  'tags',
  'key',
  'vary',
  'staleWhileRevalidate',
  'staleIfError',
  'private',
  'overrideFreshness',
  'store',
];

const duration = (value: unknown, option: string, fallback: number, min = 0) =>
  value === undefined ? fallback : parseDuration(value, option, { pkg: PKG, min });
const bytes = (value: unknown, option: string, fallback: number, min = 0) =>
  value === undefined ? fallback : parseBytes(value, option, { pkg: PKG, min });

/** A token safe to put in a header or a Redis key: no CR/LF, bounded. */
const TAG_RE = /^[\x21-\x7e]{1,128}$/;

function readTags(option: string, value: unknown): string[] {
  const tags = readStringArray(PKG, option, value, []);
  for (const tag of tags) {
    if (!TAG_RE.test(tag)) throw optionRangeError(PKG, option, tag, 'tags of 1 to 128 visible ASCII characters');
  }
  return tags;
}

function readHeaderNames(option: string, value: unknown): string[] {
  const names = readStringArray(PKG, option, value, []);
  for (const name of names) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || name === '*') {
      throw optionRangeError(PKG, option, name, 'header names (RFC 9110 tokens, not "*")');
    }
  }
  return names.map((n) => n.toLowerCase());
}

/**
 * Resolves {@link ResponseCacheOptions} into a {@link CacheConfig}.
 *
 * @throws {TypeError|RangeError} naming the bad option
 */
export function resolveOptions(options: ResponseCacheOptions | undefined): CacheConfig {
  const o = checkOptionsObject(PKG, 'responseCache', options, KNOWN) as ResponseCacheOptions;
  const statuses = o.statuses === undefined ? DEFAULT_STATUSES : o.statuses;
  if (
    !Array.isArray(statuses) ||
    statuses.some((s) => typeof s !== 'number' || !Number.isInteger(s) || s < 200 || s > 599)
  ) {
    throw optionTypeError(PKG, 'statuses', statuses, 'an array of integer HTTP statuses from 200 to 599');
  }
  const compression = o.compression ?? 'br';
  if (compression !== false && compression !== 'br' && compression !== 'gzip') {
    throw optionRangeError(PKG, 'compression', compression, '"br", "gzip" or false');
  }
  const maxBytes = bytes(o.maxBytes, 'maxBytes', 64 * 1024 * 1024, 1024);
  const maxEntryBytes = bytes(o.maxEntryBytes, 'maxEntryBytes', 1024 * 1024, 0);
  if (maxEntryBytes > maxBytes) {
    throw optionRangeError(PKG, 'maxEntryBytes', o.maxEntryBytes, `at most maxBytes (${maxBytes} bytes)`);
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
  const rawRedis: unknown = o.redis;
  if (rawRedis instanceof SharedRedis || isSharedRedisLike(rawRedis)) {
    redis = rawRedis as SharedRedis;
  } else if (typeof rawRedis === 'string' || isRedisClient(rawRedis)) {
    redis = createSharedRedis(
      typeof rawRedis === 'string' ? { url: rawRedis, logger } : { client: rawRedis as RedisClient, logger },
    );
    ownsRedis = true;
  } else if (rawRedis !== undefined) {
    throw optionTypeError(PKG, 'redis', rawRedis, 'a SharedRedis, a redis:// URL or a node-redis client');
  }
  const fleetBus = o.fleetBus;
  if (
    fleetBus !== undefined &&
    (typeof fleetBus !== 'object' ||
      fleetBus === null ||
      typeof fleetBus.publish !== 'function' ||
      typeof fleetBus.subscribe !== 'function')
  ) {
    throw optionTypeError(
      PKG,
      'fleetBus',
      fleetBus,
      'an object with publish(channel, message) and subscribe(channel, listener)',
    );
  }
  const targetedName = o.targetedCacheControl;
  if (
    targetedName !== undefined &&
    (typeof targetedName !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(targetedName))
  ) {
    throw optionTypeError(PKG, 'targetedCacheControl', targetedName, 'a header name (an RFC 9110 token)');
  }
  const targeted =
    targetedName === undefined ? ['cdn-cache-control'] : [targetedName.toLowerCase(), 'cdn-cache-control'];
  return {
    ttl: duration(o.ttl, 'ttl', 60_000, 1),
    heuristic: readHeuristic(o.heuristicFreshness),
    targeted: [...new Set(targeted)],
    forwardTargeted: readBoolean(PKG, 'forwardTargetedCacheControl', o.forwardTargetedCacheControl, false),
    maxEntries: readInteger(PKG, 'maxEntries', o.maxEntries, 10_000, 1, 100_000_000),
    maxBytes,
    eviction: readString<EvictionPolicy>(PKG, 'eviction', o.eviction, DEFAULT_EVICTION, ['tinylfu', 'lru']),
    maxEntryBytes,
    staleWhileRevalidate: duration(o.staleWhileRevalidate, 'staleWhileRevalidate', 0),
    staleIfError: duration(o.staleIfError, 'staleIfError', 0),
    statuses: new Set(statuses),
    compression,
    compressThreshold: bytes(o.compressThreshold, 'compressThreshold', 1400, 1),
    skip: readFunction<(req: IncomingMessage) => boolean>(PKG, 'skip', o.skip),
    requestCacheControl: readBoolean(PKG, 'requestCacheControl', o.requestCacheControl, false),
    lockTimeout: duration(o.lockTimeout, 'lockTimeout', 5000, 1),
    redisTimeout: duration(o.redisTimeout, 'redisTimeout', 200, 1),
    hitForPass: duration(o.hitForPass, 'hitForPass', 10_000, 0),
    serveMemoryWhenStalled: readBoolean(PKG, 'serveMemoryWhenStalled', o.serveMemoryWhenStalled, true),
    warmStart: readInteger(PKG, 'warmStart', o.warmStart, 100, 0, 100_000),
    accessFlushInterval: duration(o.accessFlushInterval, 'accessFlushInterval', 5000, 10),
    now: readFunction<() => number>(PKG, 'now', o.now, Date.now),
    registry,
    redis,
    fleetBus: redis === undefined ? fleetBus : undefined,
    ownsRedis,
    logger,
  };
}

function readHeuristic(value: ResponseCacheOptions['heuristicFreshness']): HeuristicPolicy | false {
  if (value === false) return false;
  if (value === undefined) return { fraction: 0.1, max: 86_400_000 };
  if (typeof value !== 'object' || value === null) {
    throw optionTypeError(PKG, 'heuristicFreshness', value, 'false or { fraction, max }');
  }
  const fraction = value.fraction ?? 0.1;
  if (typeof fraction !== 'number' || !(fraction > 0 && fraction <= 1)) {
    throw optionRangeError(PKG, 'heuristicFreshness.fraction', fraction, 'a number above 0, at most 1');
  }
  return { fraction, max: duration(value.max, 'heuristicFreshness.max', 86_400_000, 1) };
}

/** Accepts a SharedRedis from another copy of core (duck-typed). */
function isSharedRedisLike(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { keyv?: unknown }).keyv === 'function' &&
    typeof (value as { subscribe?: unknown }).subscribe === 'function' &&
    'client' in value &&
    'keyPrefix' in value
  );
}

/**
 * Resolves {@link RouteCacheOptions}.
 *
 * @throws {TypeError|RangeError} naming the bad option
 */
export function resolveRouteOptions(
  options: RouteCacheOptions | undefined,
  factory = 'cache',
): RouteConfig & { readonly store: unknown } {
  const o = checkOptionsObject(PKG, factory, options, ROUTE_KNOWN) as RouteCacheOptions;
  let key: ((req: IncomingMessage) => string) | undefined;
  if (typeof o.key === 'string') {
    const fixed = o.key;
    if (fixed === '' || fixed.length > 1024)
      throw optionRangeError(PKG, 'key', fixed, 'a string of 1 to 1024 characters');
    key = () => fixed;
  } else if (o.key !== undefined) {
    key = readFunction<(req: IncomingMessage) => string>(PKG, 'key', o.key);
  }
  return {
    ttl: o.ttl === undefined ? undefined : parseDuration(o.ttl, 'ttl', { pkg: PKG, min: 1 }),
    tags: readTags('tags', o.tags),
    key,
    vary: readHeaderNames('vary', o.vary),
    staleWhileRevalidate:
      o.staleWhileRevalidate === undefined
        ? undefined
        : parseDuration(o.staleWhileRevalidate, 'staleWhileRevalidate', { pkg: PKG }),
    staleIfError:
      o.staleIfError === undefined ? undefined : parseDuration(o.staleIfError, 'staleIfError', { pkg: PKG }),
    private: readBoolean(PKG, 'private', o.private, true),
    overrideFreshness: readBoolean(PKG, 'overrideFreshness', o.overrideFreshness, false),
    store: o.store,
  };
}

export { readTags };
