/**
 * Errors of the outbound breaker (ARCHITECTURE.md rule 5: classes with `code` and `status`,
 * and an `isXxx` guard that works across package copies). The inbound middleware answers
 * the same conditions with problem+json (`CIRCUIT_OPEN`, `OVERLOADED`, `TIMEOUT`).
 */

/** True when `error` carries this `name` and `code` (the cross-copy half of the `isXxx` guards). */
export function hasCode(error: unknown, name: string, code: string): boolean {
  return (
    typeof error === 'object' &&
    error !== null &&
    (error as { name?: unknown }).name === name &&
    (error as { code?: unknown }).code === code
  );
}

/** The breaker is open (or half-open with every trial taken): the call was not made. */
export class CircuitOpenError extends Error {
  override readonly name = 'CircuitOpenError';
  readonly code = 'CIRCUIT_OPEN';
  readonly status = 503;
  /** The breaker's name. */
  readonly breaker: string;
  /** Milliseconds until the breaker lets a trial call through (0 when half-open). */
  readonly retryAfterMs: number;

  constructor(breaker: string, retryAfterMs: number) {
    super(`circuit "${breaker}" is open; retry in ${Math.ceil(retryAfterMs / 1000)}s`);
    this.breaker = breaker;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Type guard for {@link CircuitOpenError}. */
export function isCircuitOpenError(error: unknown): error is CircuitOpenError {
  return error instanceof CircuitOpenError || hasCode(error, 'CircuitOpenError', 'CIRCUIT_OPEN');
}

/** The bulkhead is full: `maxConcurrent` calls run and `maxQueue` wait. The call was not made. */
export class BulkheadFullError extends Error {
  override readonly name = 'BulkheadFullError';
  readonly code = 'OVERLOADED';
  readonly status = 503;
  readonly breaker: string;

  constructor(breaker: string) {
    super(`bulkhead of "${breaker}" is full`);
    this.breaker = breaker;
  }
}

/** Type guard for {@link BulkheadFullError}. */
export function isBulkheadFullError(error: unknown): error is BulkheadFullError {
  return error instanceof BulkheadFullError || hasCode(error, 'BulkheadFullError', 'OVERLOADED');
}

/** The call did not settle within its time budget. Counts as a failure. */
export class BreakerTimeoutError extends Error {
  override readonly name = 'BreakerTimeoutError';
  readonly code = 'TIMEOUT';
  readonly status = 504;
  readonly breaker: string;
  /** The budget that ran out, in milliseconds. */
  readonly timeoutMs: number;

  constructor(breaker: string, timeoutMs: number) {
    super(`call through "${breaker}" timed out after ${timeoutMs}ms`);
    this.breaker = breaker;
    this.timeoutMs = timeoutMs;
  }
}

/** Type guard for {@link BreakerTimeoutError}. */
export function isBreakerTimeoutError(error: unknown): error is BreakerTimeoutError {
  return error instanceof BreakerTimeoutError || hasCode(error, 'BreakerTimeoutError', 'TIMEOUT');
}
