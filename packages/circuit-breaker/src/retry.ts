/**
 * Retries for the outbound breaker, on cockatiel's `RetryPolicy` and `ExponentialBackoff`
 * with a full-jitter generator whose randomness is injectable (AWS "Exponential Backoff And
 * Jitter": the n-th retry waits a uniform random time in [0, min(maxDelay, initialDelay·2ⁿ))).
 */
import { checkOptionsObject, parseDuration, readFunction, readInteger } from '@perfstack/core';
import { ExponentialBackoff, type GeneratorFn, handleWhen, type RetryPolicy, retry } from 'cockatiel';
import { isBulkheadFullError, isCircuitOpenError } from './errors.js';
import { PKG } from './policy.js';

/** Retry settings of an outbound breaker. */
export interface RetryOptions {
  /** Attempts in all, the first one included (1 = no retry). @default 3 */
  readonly maxAttempts?: number;
  /** The cap of the first retry's random delay. @default 100 */
  readonly initialDelay?: number | string;
  /** The largest cap of any retry's delay. @default '10s' */
  readonly maxDelay?: number | string;
  /** Whether an error is worth another attempt. An open breaker or a full bulkhead never is. @default () => true */
  readonly retryable?: (error: unknown) => boolean;
}

/** Resolved retry settings. */
export interface RetryConfig {
  readonly maxAttempts: number;
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly retryable: (error: unknown) => boolean;
}

const RETRY_KEYS = ['maxAttempts', 'initialDelay', 'maxDelay', 'retryable'] as const;

/** Resolves the `retry` option (`false` or `undefined`: no retries). */
export function resolveRetry(value: RetryOptions | false | undefined): RetryConfig | undefined {
  if (value === undefined || value === false) return undefined;
  const options = checkOptionsObject(PKG, 'createBreaker({ retry })', value, RETRY_KEYS);
  const initialDelayMs =
    options.initialDelay === undefined ? 100 : parseDuration(options.initialDelay, 'retry.initialDelay', { pkg: PKG });
  const maxDelayMs =
    options.maxDelay === undefined ? 10_000 : parseDuration(options.maxDelay, 'retry.maxDelay', { pkg: PKG });
  if (maxDelayMs < initialDelayMs) {
    throw new RangeError(
      `${PKG}: option "retry.maxDelay" must be at least "retry.initialDelay" (${initialDelayMs}ms), got ${maxDelayMs}ms`,
    );
  }
  return {
    maxAttempts: readInteger(PKG, 'retry.maxAttempts', options.maxAttempts, 3, 1, 100),
    initialDelayMs,
    maxDelayMs,
    retryable: readFunction(PKG, 'retry.retryable', options.retryable, () => true),
  };
}

/**
 * The full-jitter delay before retry number `retry` (0 for the first retry).
 *
 * @param retry 0-based retry index
 * @param initialDelayMs cap of the first retry
 * @param maxDelayMs largest cap
 * @param random a source of numbers in [0, 1)
 * @param multiplier growth of the cap per retry (2 unless told)
 * @returns an integer in [0, min(maxDelayMs, initialDelayMs·multiplier^retry))
 */
export function fullJitterDelay(
  retry: number,
  initialDelayMs: number,
  maxDelayMs: number,
  random: () => number,
  multiplier = 2,
): number {
  const cap = Math.min(maxDelayMs, initialDelayMs * multiplier ** retry);
  return Math.floor(random() * cap);
}

/** Builds the cockatiel retry policy for a breaker. */
export function retryPolicy(config: RetryConfig, random: () => number): RetryPolicy {
  const generator: GeneratorFn<number> = (state, options) => [
    fullJitterDelay(state ?? 0, options.initialDelay, options.maxDelay, random),
    (state ?? 0) + 1,
  ];
  const handled = handleWhen(
    (error: unknown) => !isCircuitOpenError(error) && !isBulkheadFullError(error) && config.retryable(error),
  );
  return retry(handled, {
    maxAttempts: config.maxAttempts - 1,
    backoff: new ExponentialBackoff({
      generator,
      initialDelay: config.initialDelayMs,
      maxDelay: config.maxDelayMs,
    }),
  }).dangerouslyUnref();
}
