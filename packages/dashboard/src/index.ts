/**
 * @perfstack/dashboard — the live `/dashboard` page, its JSON snapshot and event stream,
 * `/metrics` (Prometheus text) and `/health`, with access control that is loopback-only
 * unless configured, and CSRF-protected actions.
 */
export {
  type AuthPredicate,
  type BasicAuth,
  type DashboardAuth,
  isLoopbackAddress,
  type TokenAuth,
} from './access.js';
export { type DashboardMiddleware, dashboard } from './dashboard.js';
export { FLEET_CHANNEL } from './fleet.js';
export {
  buildHealthReport,
  type HealthCheckInput,
  type HealthHandler,
  type HealthHandlerOptions,
  type HealthReport,
  healthHandler,
  redisHealthCheck,
} from './health.js';
export { type MetricsHandler, type MetricsHandlerOptions, metricsHandler } from './metrics-handler.js';
export type { DashboardOptions } from './options.js';
export type {
  BreakerFigures,
  CacheFigures,
  DashboardSnapshot,
  DashboardSources,
  FleetFigures,
  FleetTotals,
  InstanceSummary,
  RequestFigures,
  SizeLimitFigures,
} from './snapshot.js';
