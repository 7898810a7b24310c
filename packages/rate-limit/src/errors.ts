/**
 * Errors of @perfstack/rate-limit. Both are {@link HttpProblemError}s, so any perfstack
 * adapter (and `sendProblem`) answers them as problem+json. The default handlers write the
 * same problems directly (no stack trace is captured on the hot 429 path); these classes
 * are for apps that throw or `next(err)` them from their own `handler`.
 */
import { HttpProblemError } from '@perfstack/core';

/** 429 `RATE_LIMITED`, with `Retry-After`. */
export class RateLimitError extends HttpProblemError {
  /** Seconds until the client may retry. */
  readonly retryAfter: number;
  /** Name of the limit that refused the request. */
  readonly limitName: string;

  constructor(limitName: string, retryAfter: number, detail = 'Too many requests, please try again later.') {
    super({
      code: 'RATE_LIMITED',
      detail,
      extensions: { limit: limitName, retryAfter },
      headers: { 'Retry-After': String(retryAfter) },
    });
    this.retryAfter = retryAfter;
    this.limitName = limitName;
  }
}

/** True for a {@link RateLimitError} (or any problem with code `RATE_LIMITED`). */
export function isRateLimitError(error: unknown): error is RateLimitError {
  return error instanceof HttpProblemError
    ? error.code === 'RATE_LIMITED'
    : typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'RATE_LIMITED';
}

/** 503 `STORE_UNAVAILABLE`: the Redis store failed and `failOpen` is false. */
export class StoreUnavailableError extends HttpProblemError {
  constructor(detail = 'The rate-limit store is unavailable; try again shortly.') {
    super({ code: 'STORE_UNAVAILABLE', detail, headers: { 'Retry-After': '1' } });
  }
}

/** True for a {@link StoreUnavailableError} (or any problem with code `STORE_UNAVAILABLE`). */
export function isStoreUnavailableError(error: unknown): error is StoreUnavailableError {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'STORE_UNAVAILABLE';
}
