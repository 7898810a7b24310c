/**
 * Which answers are the stack's refusals, for the layers that report on them (the access log
 * aggregates refusals instead of writing a line for each one). Read from the problem code
 * `sendProblem` marks the response with ({@link problemSent}): typed state, never parsed back
 * out of the body (house style rule 18).
 */
import type { ServerResponse } from 'node:http';
import { problemSent } from './errors.js';
import type { ProblemCode } from './problem.js';

/**
 * Problems that refuse a request because of the client or the load, not because of a fault
 * of the app: rate limits, open breakers, shedding, size limits, slow bodies, an unavailable
 * rate-limit store. (`TIMEOUT`, a route over its time budget, is the app's fault: not here.)
 */
export const REFUSAL_CODES: ReadonlySet<ProblemCode> = new Set<ProblemCode>([
  'RATE_LIMITED',
  'CIRCUIT_OPEN',
  'OVERLOADED',
  'STORE_UNAVAILABLE',
  'PAYLOAD_TOO_LARGE',
  'URI_TOO_LONG',
  'HEADERS_TOO_LARGE',
  'BODY_TIMEOUT',
]);

/** The refusal code (one of {@link REFUSAL_CODES}) a perfstack layer answered `res` with, if any. */
export function refusalOf(res: ServerResponse): ProblemCode | undefined {
  const code = problemSent(res);
  return code !== undefined && REFUSAL_CODES.has(code) ? code : undefined;
}
