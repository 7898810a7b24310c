/**
 * The snapshot timing returns: core's `TimingSnapshot` contract, with each route row
 * carrying the counts behind its ratios (extra fields only, so the dashboard, which reads
 * `TimingSnapshot`, is unaffected).
 */
import type { TimingSnapshot } from '@perfstack/core';
import type { TimingRouteStats } from './windows.js';

/** What `timing().snapshot()` returns and what alert rules read. */
export interface DetailedTimingSnapshot extends TimingSnapshot {
  /** Routes with traffic in the last 5 minutes, busiest first (at most `maxRoutes` + 1 rows). */
  readonly routes: readonly TimingRouteStats[];
}
