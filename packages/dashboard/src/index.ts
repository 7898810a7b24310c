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
export {
  isMemoryTightError,
  isProfilerBusyError,
  type MemoryFigures,
  MemoryTightError,
  type ProfileKind,
  ProfilerBusyError,
} from './errors.js';
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
export {
  fitLine,
  type LeakMetric,
  type LeakReport,
  type LeakSample,
  type LeakTrend,
  LeakWatch,
  type LeakWatchConfig,
  ProcessLeakSampler,
} from './leak-watch.js';
export { type MetricsHandler, type MetricsHandlerOptions, metricsHandler } from './metrics-handler.js';
export type {
  ContinuousProfilingOptions,
  DashboardOptions,
  FleetBus,
  LeakWatchOptions,
  ProfilingOptions,
  ReportOptions,
  ReportScheduleOptions,
} from './options.js';
export type { ContinuousProfiler, ContinuousProfilesReport, PeriodOutcome } from './profile/continuous.js';
export type { CpuFunction, CpuProfile, CpuProfileSummary, CpuRecording, FlameNode } from './profile/cpu.js';
export type { FunctionSelfTime, FunctionTable, ProfileDiff, ProfileDiffRow } from './profile/diff.js';
export type { LastProfiles } from './profile/handlers.js';
export type { AllocationSite, HeapSamplingSummary, SamplingHeapProfile } from './profile/heap.js';
export type { HotFunction, LinkedRecommendation } from './profile/hot-functions.js';
export type { ProfileEntry } from './profile/ring.js';
export {
  type PerformanceReport,
  type Recommendation,
  type ReportInputs,
  RULE_WEIGHTS,
  type RuleResult,
} from './report.js';
export { type ReportFormat, reportToHtml, reportToMarkdown } from './report-format.js';
export type { ReportDelivery } from './report-schedule.js';
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
