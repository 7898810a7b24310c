/**
 * @perfstack/circuit-breaker — fail fast under trouble, recover by itself, shed load before
 * the process drowns.
 *
 * - {@link circuitBreaker}: Connect middleware with per-route breakers, time budgets (504
 *   `TIMEOUT`), bulkheads (503 `OVERLOADED`) and process overload shedding; open breakers
 *   answer 503 `CIRCUIT_OPEN` with `Retry-After`, or a stale cache entry, or a fallback.
 * - {@link createBreaker}: the same breaker for outbound calls, with timeout, bulkhead and
 *   retries with exponential backoff and full jitter.
 */

export { type AdaptiveConcurrencyOptions, ConcurrencyLimiter } from './adaptive.js';
export {
  CLIENT_PRESETS,
  type Client,
  ClientDeadlineError,
  type ClientOptions,
  type ClientPresetName,
  type ClientRequest,
  type ClientResponse,
  type ClientRetryOptions,
  type ClientSnapshot,
  createClient,
  type HealthCheckOptions,
  type HedgeOptions,
  isClientDeadlineError,
  isNoOriginAvailableError,
  NoOriginAvailableError,
  type OriginSnapshot,
  type RetryBudgetOptions,
  type TraceContext,
} from './client/index.js';
export { type BreakerClock, systemClock, type TimerHandle } from './clock.js';
export {
  BreakerTimeoutError,
  BulkheadFullError,
  CircuitOpenError,
  isBreakerTimeoutError,
  isBulkheadFullError,
  isCircuitOpenError,
} from './errors.js';
export type {
  BreakerStateName,
  CircuitBreakerEvents,
  OpenReason,
  OutboundBreakerEvents,
  OverloadEvent,
  OverloadReason,
  RejectionEvent,
  RetryEvent,
  ShedEvent,
  StateChangeEvent,
  TimeoutEvent,
  TransitionReason,
} from './events.js';
export { type CircuitBreakerMiddleware, circuitBreaker, EARLY_BREAKER, type EarlyBreaker } from './middleware.js';
export type {
  CircuitBreakerOptions,
  FailurePredicate,
  FallbackHandler,
  FallbackReason,
  RouteGuardOptions,
} from './options.js';
export {
  createBreaker,
  type OutboundBreaker,
  type OutboundBreakerOptions,
  type OutboundBreakerSnapshot,
} from './outbound.js';
export type { OverloadOptions } from './overload.js';
export type { BreakerPolicyOptions } from './policy.js';
export { fullJitterDelay, type RetryOptions } from './retry.js';
export type { BreakerTunables, BreakerTuning } from './tuning.js';
