/**
 * @perfstack/core — what every perfstack layer shares: option parsing, problem+json
 * errors, Connect-style middleware types, response hooks, framework adapters, the
 * shared Redis connection and the shared metrics registry.
 */
export { expressRouterOf, resolveExpressRoute, resolveExpressRouteIn } from './adapters/express-routes.js';
export { type KoaLikeContext, type KoaMiddleware, toKoa } from './adapters/koa.js';
export { watchKoaErrors } from './adapters/koa-errors.js';
export { resolveKoaRoute } from './adapters/koa-routes.js';
export { type RequestListener, sendError, type WithMiddlewareOptions, withMiddleware } from './adapters/node.js';
export { BYTES_FORM, type ParseBytesOptions, parseBytes } from './bytes.js';
export {
  CLUSTER_ENV,
  CLUSTER_SOCKET_ENV,
  type ClusterChannel,
  type ClusterMessage,
  type ClusterTransport,
  clusterChannel,
  createClusterChannel,
  type HubLauncher,
  hubSocketPath,
  hubTransport,
  isPm2ClusterWorker,
  jsonLines,
  setHubLauncher,
} from './cluster-channel.js';
export { compose } from './compose.js';
export type {
  Alert,
  BreakerSnapshot,
  CacheSource,
  CacheStats,
  CircuitBreakerSource,
  ConcurrencyLimitFigures,
  DataCacheSource,
  DataCacheStats,
  DataNamespaceStats,
  HealthCheck,
  HealthSource,
  LatencySummary,
  OffloadPoolFigures,
  OutboundClientFigures,
  OutboundOriginFigures,
  OutboundSource,
  ProcessStats,
  RateLimitSource,
  RateLimitStats,
  RouteStats,
  SharedContext,
  SizeLimitSource,
  TimingSnapshot,
  TimingSource,
  WindowStats,
} from './contracts.js';
export { DURATION_FORM, type ParseDurationOptions, parseDuration } from './duration.js';
export {
  clientErrorStatus,
  gateExpressErrorHandlers,
  markProblemSent,
  problemSent,
  recordRequestError,
  requestErrorOf,
} from './errors.js';
export { type Fallback, markOriginStatus, originStatus, setFallback, tryFallback } from './fallback.js';
export {
  addServerTiming,
  type BodySink,
  captureBody,
  isHeadSent,
  isUncacheable,
  markUncacheable,
  onBeforeHead,
  serverTimingEntry,
} from './hooks.js';
export { consoleLogger, OnceLogger, silentLogger } from './logger.js';
export { LOOP_DELAY_RESOLUTION_MS, type LoopDelayFigures, LoopDelayMonitor, loopDelayMs } from './loop-delay.js';
export { armDeadline, loopElapsed, loopNow, loopStalledMs, TICK_MS, useLoopTime } from './loop-time.js';
export {
  AggregatorRegistry,
  Counter,
  counter,
  createRegistry,
  Gauge,
  gauge,
  Histogram,
  histogram,
  Registry,
} from './metrics.js';
export {
  checkOptionsObject,
  describeValue,
  optionMessage,
  optionRangeError,
  optionTypeError,
  readBoolean,
  readFunction,
  readInteger,
  readNumber,
  readString,
  readStringArray,
} from './options.js';
export {
  clearForProblem,
  codeForStatus,
  HttpProblemError,
  isHttpProblemError,
  PROBLEM_CODES,
  type Problem,
  type ProblemCode,
  problemBody,
  problemJson,
  sendProblem,
} from './problem.js';
export {
  createSharedRedis,
  FLEET_KEY,
  isRedisClient,
  isRedisCluster,
  type RedisClient,
  type RedisHealth,
  type RedisStatus,
  RedisTimeoutError,
  RedisUnavailableError,
  SharedRedis,
  type SharedRedisOptions,
  UNRESPONSIVE_AFTER,
} from './redis.js';
export { REFUSAL_CODES, refusalOf } from './refusal.js';
export { ensureRequestId, getRequestId, isValidRequestId, MAX_REQUEST_ID_LENGTH } from './request-id.js';
export {
  captureRoute,
  getRoute,
  MAX_PREFIX_ROUTES,
  pathOf,
  pathPrefixMatcher,
  pathPrefixRoute,
  resolveRoute,
  routeLabel,
  setRoute,
  UNMATCHED_ROUTE,
} from './route.js';
export {
  durationText,
  isSettingsError,
  type SettingChange,
  type SettingInfo,
  type SettingKind,
  type SettingsActor,
  type SettingsAuditEntry,
  SettingsError,
  type SettingsSource,
} from './settings.js';
export {
  declarableValue,
  declareShapeKeys,
  KNOWN_KEYS,
  LEARN_EVERY,
  LEARN_FIRST,
  MAX_KEYS,
  MAX_PROTOTYPES,
  ShapeWarmer,
  shapeWarmerOf,
  warmShapes,
} from './shapes.js';
export { requestSpan, spanEvent, traceFields } from './trace.js';
export type { ClosableMiddleware, Disposable, Middleware, NextFunction, PerfstackLogger } from './types.js';
