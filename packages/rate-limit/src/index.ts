/**
 * @perfstack/rate-limit — rate limits with the fixed-window, sliding-window and
 * token-bucket algorithms, on a bounded memory store or an atomic Redis store shared by a
 * whole fleet, with express-rate-limit's option names, header formats and IPv6 handling.
 */

export { ipKeyGenerator } from 'express-rate-limit';
export { FIXED_WINDOW, type LimitSpec, SLIDING_WINDOW, TOKEN_BUCKET } from './algorithms.js';
export { ClientAddress, compileTrust, type TrustFunction, type TrustProxy } from './client-ip.js';
export { isRateLimitError, isStoreUnavailableError, RateLimitError, StoreUnavailableError } from './errors.js';
export type { HeadersDraft } from './headers.js';
export {
  type Algorithm,
  defaultLimitName,
  type LimitOptions,
  type RateLimitHandler,
  type RateLimitInfo,
  type RateLimitOptions,
  type ValidationName,
  type ValueDeterminingMiddleware,
} from './options.js';
export {
  EARLY_LIMITER,
  type EarlyLimiter,
  type EarlyVerdict,
  type KeyLimitState,
  type LimitStats,
  RATE_LIMIT_OPTIONS,
  type RateLimiter,
  type RateLimiterStats,
  type RateLimitKeyInfo,
  rateLimit,
} from './rate-limit.js';
export {
  ClusterStore,
  type ClusterStoreDefinition,
  ClusterStoreServer,
  ClusterStoreTimeoutError,
  type DecisionCallback,
} from './store/cluster.js';
export { MemoryStore, type MemoryStoreOptions } from './store/memory.js';
export { type RedisKeyPlan, RedisStore } from './store/redis.js';
export { DECIDE_SCRIPT, DECIDE_SHA } from './store/script.js';
export type { Decision, DecisionStore } from './store/types.js';
