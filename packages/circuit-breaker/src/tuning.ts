/**
 * Runtime settings of the breaker middleware (perfstack's settings API): the default time
 * budget and breaker policy, and the event-loop shedding threshold. Validated exactly like
 * the construction options (the same resolvers); applied by replacing the resolved objects
 * the request path already reads, so a request pays nothing for them.
 */

import { parseDuration } from '@perfstack/core';
import type { GuardConfig } from './options.js';
import { resolveGuard } from './options.js';
import type { OverloadConfig } from './overload.js';
import { PKG } from './policy.js';

/** What `tune()` takes: each member optional; `timeout: false` removes the default budget. */
export interface BreakerTuning {
  /** The default time budget of routes without their own. */
  readonly timeout?: number | string | false;
  /** Consecutive failures that open a breaker (routes without their own). */
  readonly failureThreshold?: number;
  /** How long an open breaker waits before a trial (routes without their own). */
  readonly resetTimeout?: number | string;
  /** Event-loop delay above which requests are shed (only when `overload.maxEventLoopDelay` is on). */
  readonly maxEventLoopDelay?: number | string;
}

/** The values in force, as `tunables()` returns them (ms; `undefined`: none). */
export interface BreakerTunables {
  readonly timeoutMs: number | undefined;
  readonly failureThreshold: number;
  readonly resetTimeoutMs: number;
  /** `undefined` when event-loop shedding is off (it cannot be turned on at runtime). */
  readonly maxEventLoopDelayMs: number | undefined;
  /** The routes known so far (patterns, and the `routes` option's names), for per-route tuning. */
  readonly routes: readonly string[];
}

const TUNING_KEYS = new Set(['timeout', 'failureThreshold', 'resetTimeout', 'maxEventLoopDelay']);

/**
 * Resolves a tuning against the defaults and overload config in force.
 *
 * @throws {TypeError|RangeError} naming the option, as construction does
 */
export function resolveTuning(
  tuning: BreakerTuning,
  defaults: GuardConfig,
  overload: OverloadConfig | undefined,
): { readonly defaults: GuardConfig; readonly overload: OverloadConfig | undefined } {
  if (typeof tuning !== 'object' || tuning === null) throw new TypeError(`${PKG}: tune() takes an object`);
  for (const key of Object.keys(tuning)) {
    if (!TUNING_KEYS.has(key)) throw new TypeError(`${PKG}: "${key.slice(0, 40)}" cannot be changed at runtime`);
  }
  const { maxEventLoopDelay, ...guard } = tuning;
  const next = resolveGuard(guard, defaults, '');
  let nextOverload = overload;
  if (maxEventLoopDelay !== undefined) {
    if (overload?.maxEventLoopDelayMs === undefined) {
      throw new RangeError(`${PKG}: "overload.maxEventLoopDelay" is off; it can be changed, not turned on, at runtime`);
    }
    const ms = parseDuration(maxEventLoopDelay, 'overload.maxEventLoopDelay', { pkg: PKG, min: 1 });
    nextOverload = { ...overload, maxEventLoopDelayMs: ms };
  }
  return { defaults: next, overload: nextOverload };
}
