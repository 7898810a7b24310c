/**
 * perfstack — production-grade speed and protection for Node.js HTTP apps in one line.
 *
 * ```ts
 * const stack = performanceStack({ redis: process.env.REDIS_URL });
 * app.use(stack);
 * app.use('/dashboard', stack.dashboard());
 * app.get('/metrics', stack.metrics());
 * app.get('/health', stack.health());
 * app.get('/products', cache({ ttl: '5m', tags: ['products'] }), listProducts);
 * ```
 *
 * Re-exports the main factory of every layer so that one import is enough; each layer is
 * also its own `@perfstack/*` package.
 */
export {
  Cacheable,
  cache,
  createCache,
  type DataCache,
  type DataCacheOptions,
  Memoize,
  type MemoizeOptions,
  memoize,
  type ResponseCache,
  type ResponseCacheOptions,
  type RouteCacheOptions,
  responseCache,
} from '@perfstack/cache';
export {
  type CircuitBreakerMiddleware,
  type CircuitBreakerOptions,
  type Client,
  type ClientOptions,
  type ClientRequest,
  type ClientResponse,
  circuitBreaker,
  createBreaker,
  createClient,
} from '@perfstack/circuit-breaker';
export {
  compose,
  declareShapeKeys,
  HttpProblemError,
  isHttpProblemError,
  type Middleware,
  type Problem,
  type ProblemCode,
  parseBytes,
  parseDuration,
  sendProblem,
  setRoute,
} from '@perfstack/core';
export { dashboard, healthHandler, metricsHandler } from '@perfstack/dashboard';
export { type AccessLogger, type AccessLogOptions, accessLog } from '@perfstack/logger';
export { type RateLimiter, type RateLimitOptions, rateLimit } from '@perfstack/rate-limit';
export { type SizeLimiter, type SizeLimitOptions, sizeLimit } from '@perfstack/size-limit';
export { type Timing, type TimingOptions, timing } from '@perfstack/timing';
export type { AutoTune, AutoTuneDecision, AutoTuneOptions } from './autotune.js';
export type { StackClientOptions } from './client.js';
export { DEFAULT_ROUTING, type EndpointName, type RoutingSettings } from './endpoints.js';
export { ENV_NOT_READ, ENV_VARIABLES, type EnvVariable } from './env.js';
export { DEFAULT_ORDER, type LayerName } from './layers.js';
export type { Monitoring, MonitoringOptions } from './monitoring.js';
export { type OffloadHandler, type OffloadInput, type OffloadOptions, type OffloadStats, offload } from './offload.js';
export { type ProtectServerOptions, protectServer, SERVER_TIMEOUTS } from './server.js';
export { SETTINGS_CHANNEL, type SettingValue, type StackSettings } from './settings.js';
export {
  DEFAULT_RATE_LIMIT,
  type InternalPaths,
  type PerformanceStack,
  type PerformanceStackOptions,
  performanceStack,
  type StackDashboardOptions,
  type StackLayers,
} from './stack.js';
