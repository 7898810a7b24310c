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
 */
export class SizeLimitError extends HttpProblemError {
  declare readonly code: SizeLimitCode & ProblemCode;
  readonly [SIZE_LIMIT_ERROR] = true;

  constructor(code: SizeLimitCode, detail: string, extensions: Readonly<Record<string, unknown>> = {}) {
    super({ code, detail, extensions });
  }
}

/** Type guard for {@link SizeLimitError} (works across package copies). */
export function isSizeLimitError(error: unknown): error is SizeLimitError {
  return (
    error instanceof SizeLimitError ||
    (isHttpProblemError(error) && (error as unknown as Record<symbol, unknown>)[SIZE_LIMIT_ERROR] === true)
  );
}
