/**
 * Links the report's slow-route findings to the hottest functions of the last CPU profile
 * (continuous or on demand, whichever is newer, if it ended within the last 15 minutes): each
 * `latency` recommendation for a route gets `hotFunctions` (the top three by self time, V8's
 * `(idle)`, `(program)`, `(garbage collector)` and `(root)` left out) and a sentence naming
 * them in its finding, so the JSON, Markdown and HTML reports and the page all show it. A CPU
 * profile does not say which request a sample served: these are the process's hottest
 * functions while the route was slow, the first place to look, not a per-route attribution.
 */

import type { PerformanceReport, Recommendation } from '../report.js';
import type { CpuProfileSummary } from './cpu.js';

/** A function named in a slow-route finding. */
export interface HotFunction {
  readonly functionName: string;
  readonly url: string;
  readonly line: number;
  readonly selfShare: number;
  readonly selfMs: number;
}

/** A recommendation with the hottest functions of the last profile. */
export interface LinkedRecommendation extends Recommendation {
  readonly hotFunctions?: readonly HotFunction[];
  /** The profile they come from: its id (continuous) or `null` (on demand), and when it ended. */
  readonly hotProfile?: { readonly id: string | null; readonly at: number };
}

/** A profile older than this is not linked (the route table covers the last 5 minutes). */
export const HOT_PROFILE_MAX_AGE_MS = 15 * 60_000;
const HOT_COUNT = 3;

const place = (f: { readonly url: string; readonly line: number }) =>
  f.url === ''
    ? ''
    : ` (${f.url
        .replace(/^file:\/\//, '')
        .split('/')
        .slice(-2)
        .join('/')}:${f.line})`;

/** The hottest functions of a summary, V8's pseudo-frames left out. */
export function hotFunctions(summary: CpuProfileSummary, count = HOT_COUNT): HotFunction[] {
  return summary.top
    .filter((f) => !/^\((idle|program|garbage collector|root)\)$/.test(f.functionName))
    .slice(0, count)
    .map((f) => ({ functionName: f.functionName, url: f.url, line: f.line, selfShare: f.selfShare, selfMs: f.selfMs }));
}

/**
 * Adds the last profile's hottest functions to the report's slow-route recommendations.
 *
 * @param report the report as built
 * @param last the newest CPU profile summary and its id (`null` for one recorded on demand)
 * @param now the clock
 * @returns the report, unchanged when there is no recent profile or no slow route
 */
export function linkHotFunctions(
  report: PerformanceReport,
  last: { readonly id: string | null; readonly summary: CpuProfileSummary } | undefined,
  now: number,
): PerformanceReport {
  if (last === undefined || now - last.summary.at > HOT_PROFILE_MAX_AGE_MS) return report;
  const hot = hotFunctions(last.summary);
  if (hot.length === 0) return report;
  const at = new Date(last.summary.at).toISOString().replace(/\.\d+Z$/, 'Z');
  const sentence = ` Hottest functions in the last CPU profile (${at}): ${hot
    .map((f) => `\`${f.functionName}\`${place(f)} ${(f.selfShare * 100).toFixed(1)}% self`)
    .join(', ')}.`;
  const recommendations = report.recommendations.map((rec): LinkedRecommendation => {
    if (rec.rule !== 'latency' || rec.route === null) return rec;
    return {
      ...rec,
      finding: rec.finding + sentence,
      hotFunctions: hot,
      hotProfile: { id: last.id, at: last.summary.at },
    };
  });
  return { ...report, recommendations };
}
