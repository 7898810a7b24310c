/**
 * Errors of the outbound client (ARCHITECTURE.md rule 5: classes with `code` and `status`,
 * and an `isXxx` guard that works across package copies). A failed attempt's own error
 * (a refused connection, a `BreakerTimeoutError`) is what the caller sees when the retries
 * are spent; these two are the client's own verdicts.
 */

import { hasCode } from '../errors.js';

/** The overall deadline (`retry.deadline`) ran out across the attempts. */
export class ClientDeadlineError extends Error {
  override readonly name = 'ClientDeadlineError';
  readonly code = 'DEADLINE_EXCEEDED';
  readonly status = 504;
  /** The client's name. */
  readonly client: string;
  /** The deadline in milliseconds. */
  readonly deadlineMs: number;
  /** Attempts started before the deadline ran out. */
  readonly attempts: number;

  constructor(client: string, deadlineMs: number, attempts: number, options?: { cause?: unknown }) {
    super(`client "${client}": deadline of ${deadlineMs}ms exceeded after ${attempts} attempt(s)`, options);
    this.client = client;
    this.deadlineMs = deadlineMs;
    this.attempts = attempts;
  }
}

/** Type guard for {@link ClientDeadlineError}. */
export function isClientDeadlineError(error: unknown): error is ClientDeadlineError {
  return error instanceof ClientDeadlineError || hasCode(error, 'ClientDeadlineError', 'DEADLINE_EXCEEDED');
}

/** No origin may take the call: every one is unhealthy or its breaker is open. The call was not made. */
export class NoOriginAvailableError extends Error {
  override readonly name = 'NoOriginAvailableError';
  readonly code = 'NO_ORIGIN';
  readonly status = 503;
  /** The client's name. */
  readonly client: string;
  /** Milliseconds until the first breaker lets a trial call through (0 when unknown). */
  readonly retryAfterMs: number;

  constructor(client: string, retryAfterMs: number) {
    super(`client "${client}": no origin available (all unhealthy or open)`);
    this.client = client;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Type guard for {@link NoOriginAvailableError}. */
export function isNoOriginAvailableError(error: unknown): error is NoOriginAvailableError {
  return error instanceof NoOriginAvailableError || hasCode(error, 'NoOriginAvailableError', 'NO_ORIGIN');
}
