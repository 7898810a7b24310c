/**
 * The errors this package answers with. Each is an `HttpProblemError` (RFC 9457
 * problem+json, codes from ARCHITECTURE.md), so an `onReject` override or any framework
 * error handler can send it as it is.
 */
import { HttpProblemError, isHttpProblemError, type ProblemCode } from '@perfstack/core';

const SIZE_LIMIT_ERROR = Symbol.for('perfstack.sizeLimit.error');

/** The problem codes a size limiter answers with. */
export type SizeLimitCode =
  | 'PAYLOAD_TOO_LARGE'
  | 'URI_TOO_LONG'
  | 'HEADERS_TOO_LARGE'
  | 'BODY_TIMEOUT'
  | 'LENGTH_REQUIRED'
  | 'BAD_REQUEST';

/** Every code, in the order `stats()` lists them. */
export const SIZE_LIMIT_CODES: readonly SizeLimitCode[] = [
  'PAYLOAD_TOO_LARGE',
  'URI_TOO_LONG',
  'HEADERS_TOO_LARGE',
  'BODY_TIMEOUT',
  'LENGTH_REQUIRED',
  'BAD_REQUEST',
];

/**
 * A request refused by a size limit. `extensions` carries the limit and, where known,
 * the size received (`received`) or declared (`contentLength`).
 *
 * Made without a stack trace (its `stack` is the name and message only): it describes what
 * the client sent, never a fault of the code that noticed it, and capturing the frames took
 * 2 % of a 413's CPU profile under a flood of oversized bodies.
 */
export class SizeLimitError extends HttpProblemError {
  declare readonly code: SizeLimitCode & ProblemCode;
  readonly [SIZE_LIMIT_ERROR] = true;

  constructor(code: SizeLimitCode, detail: string, extensions: Readonly<Record<string, unknown>> = {}) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super({ code, detail, extensions });
    } finally {
      Error.stackTraceLimit = limit;
    }
  }
}

/** Type guard for {@link SizeLimitError} (works across package copies). */
export function isSizeLimitError(error: unknown): error is SizeLimitError {
  return (
    error instanceof SizeLimitError ||
    (isHttpProblemError(error) && (error as unknown as Record<symbol, unknown>)[SIZE_LIMIT_ERROR] === true)
  );
}
