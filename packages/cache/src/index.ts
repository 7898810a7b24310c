/**
 * @perfstack/cache — a response cache that is correct HTTP (RFC 9111), safe by default
 * and fast: L1 in memory (W-TinyLFU or LRU eviction) and optional L2 in Redis (a hash per URL on the
 * shared connection), per-route `cache()` and `@Cacheable()`, tag/key/prefix invalidation
 * across instances through a durable Redis stream, request collapsing per variant,
 * stale-while-revalidate and stale-if-error.
 */
export { type Entry, type EntryPolicy, isPerRequestHeader } from './entry.js';
export { CacheStoreError, isCacheStoreError } from './errors.js';
export {
  type CacheFleetBus,
  DEFAULT_STATUSES,
  type ResponseCacheOptions,
  type RouteCacheOptions,
} from './options.js';
export { isResponseCache, type ResponseCache, responseCache } from './response-cache.js';
export { REFRESH_HEADER } from './revalidate.js';
export { Cacheable, cache, defaultCache, type RouteHandler } from './route.js';
export { DEFAULT_EVICTION, type EvictionPolicy, MemoryStore, type MemoryStoreOptions } from './store/memory.js';
export { RedisStore } from './store/redis.js';
export type { Awaitable, CacheStore } from './store/store.js';
export { type DisposeReason, type Segment, TinyLfuCache, type TinyLfuOptions } from './store/tinylfu.js';
