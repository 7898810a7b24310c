/**
 * When a breaker opens and how it recovers: the options shared by the inbound middleware,
 * its per-route overrides and the outbound breaker, resolved once into a {@link BreakerPolicy}.
 */
import { optionRangeError, parseDuration, readInteger, readNumber } from '@perfstack/core';

/** The package name used in every error message. */
export const PKG = '@perfstack/circuit-breaker';

/** Options that decide when a breaker opens and how it recovers. */
export interface BreakerPolicyOptions {
  /**
   * Consecutive failures that open the breaker; `0` turns this rule off (then a failure
   * rate or a slow-call rate must be set).
   * @default 5
   */
  readonly failureThreshold?: number;
  /** How long the breaker stays open before it lets trial requests through. @default '30s' */
  readonly resetTimeout?: number | string;
  /**
   * Share of failed calls (0 < x ≤ 1) in `rollingWindow` that opens the breaker once
   * `minimumRequests` calls were seen. Off unless set.
   * @default undefined
   */
  readonly failureRateThreshold?: number;
  /** Calls the rolling window must hold before a rate may open the breaker. @default 10 */
  readonly minimumRequests?: number;
  /** The span the failure and slow-call rates are measured over (10 buckets). @default '10s' */
  readonly rollingWindow?: number | string;
  /** A call at least this long is slow. Off unless set. @default undefined */
  readonly slowCallDuration?: number | string;
  /** Share of slow calls (0 < x ≤ 1) that opens the breaker; needs `slowCallDuration`. @default 0.5 */
  readonly slowCallRateThreshold?: number;
  /** Trial calls let through while half-open. @default 1 */
  readonly halfOpenMaxTrials?: number;
  /** Successful trials that close a half-open breaker (at most `halfOpenMaxTrials`). @default 1 */
  readonly successThreshold?: number;
}

/** The resolved policy. */
export interface BreakerPolicy {
  readonly failureThreshold: number;
  readonly resetTimeoutMs: number;
  readonly failureRateThreshold: number | undefined;
  readonly minimumRequests: number;
  readonly rollingWindowMs: number;
  readonly slowCallMs: number | undefined;
  readonly slowCallRateThreshold: number;
  readonly halfOpenMaxTrials: number;
  readonly successThreshold: number;
}

/** The option keys of {@link BreakerPolicyOptions}. */
export const POLICY_KEYS = [
  'failureThreshold',
  'resetTimeout',
  'failureRateThreshold',
  'minimumRequests',
  'rollingWindow',
  'slowCallDuration',
  'slowCallRateThreshold',
  'halfOpenMaxTrials',
  'successThreshold',
] as const;

/** Defaults when nothing is passed. */
export const DEFAULT_POLICY: BreakerPolicy = {
  failureThreshold: 5,
  resetTimeoutMs: 30_000,
  failureRateThreshold: undefined,
  minimumRequests: 10,
  rollingWindowMs: 10_000,
  slowCallMs: undefined,
  slowCallRateThreshold: 0.5,
  halfOpenMaxTrials: 1,
  successThreshold: 1,
};

function readRate(option: string, value: unknown, fallback: number | undefined): number | undefined {
  if (value === undefined) return fallback;
  const rate = readNumber(PKG, option, value, 0, 0, 1);
  if (rate === 0) throw optionRangeError(PKG, option, value, 'a number greater than 0 and at most 1');
  return rate;
}

/**
 * Resolves policy options over `base` (the defaults, or the middleware's own policy for a
 * per-route override).
 *
 * @param options what the caller passed (already checked for unknown keys)
 * @param base the values used for options not passed
 * @param prefix prepended to option names in errors, e.g. `routes["/users/:id"].`
 * @throws {TypeError|RangeError} naming the option
 */
export function resolvePolicy(
  options: BreakerPolicyOptions,
  base: BreakerPolicy = DEFAULT_POLICY,
  prefix = '',
): BreakerPolicy {
  const failureThreshold = readInteger(
    PKG,
    `${prefix}failureThreshold`,
    options.failureThreshold,
    base.failureThreshold,
  );
  const resetTimeoutMs =
    options.resetTimeout === undefined
      ? base.resetTimeoutMs
      : parseDuration(options.resetTimeout, `${prefix}resetTimeout`, { pkg: PKG, min: 1 });
  const failureRateThreshold = readRate(
    `${prefix}failureRateThreshold`,
    options.failureRateThreshold,
    base.failureRateThreshold,
  );
  const minimumRequests = readInteger(
    PKG,
    `${prefix}minimumRequests`,
    options.minimumRequests,
    base.minimumRequests,
    1,
  );
  const rollingWindowMs =
    options.rollingWindow === undefined
      ? base.rollingWindowMs
      : parseDuration(options.rollingWindow, `${prefix}rollingWindow`, { pkg: PKG, min: 10 });
  const slowCallMs =
    options.slowCallDuration === undefined
      ? base.slowCallMs
      : parseDuration(options.slowCallDuration, `${prefix}slowCallDuration`, { pkg: PKG, min: 1 });
  const slowCallRateThreshold = readRate(
    `${prefix}slowCallRateThreshold`,
    options.slowCallRateThreshold,
    base.slowCallRateThreshold,
  ) as number;
  if (options.slowCallRateThreshold !== undefined && slowCallMs === undefined) {
    throw optionRangeError(
      PKG,
      `${prefix}slowCallRateThreshold`,
      options.slowCallRateThreshold,
      'set together with "slowCallDuration"',
    );
  }
  const halfOpenMaxTrials = readInteger(
    PKG,
    `${prefix}halfOpenMaxTrials`,
    options.halfOpenMaxTrials,
    base.halfOpenMaxTrials,
    1,
  );
  const successThreshold = readInteger(
    PKG,
    `${prefix}successThreshold`,
    options.successThreshold,
    Math.min(base.successThreshold, halfOpenMaxTrials),
    1,
  );
  if (successThreshold > halfOpenMaxTrials) {
    throw optionRangeError(
      PKG,
      `${prefix}successThreshold`,
      options.successThreshold,
      `an integer from 1 to halfOpenMaxTrials (${halfOpenMaxTrials})`,
    );
  }
  if (failureThreshold === 0 && failureRateThreshold === undefined && slowCallMs === undefined) {
    throw optionRangeError(
      PKG,
      `${prefix}failureThreshold`,
      0,
      'at least 1 unless "failureRateThreshold" or "slowCallDuration" is set (nothing would open the breaker)',
    );
  }
  return {
    failureThreshold,
    resetTimeoutMs,
    failureRateThreshold,
    minimumRequests,
    rollingWindowMs,
    slowCallMs,
    slowCallRateThreshold,
    halfOpenMaxTrials,
    successThreshold,
  };
}
