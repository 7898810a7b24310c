/**
 * Which problem a response was answered with, for the layers that report on it (the access
 * log aggregates the stack's refusals instead of writing a line for each one). Typed state
 * kept beside the response (house style rule 18), never parsed back out of the body.
 *
 * A WeakMap, not a property on the response: nothing changes the response's hidden class,
 * and only responses answered with a problem pay for an entry.
 */
import type { ServerResponse } from 'node:http';
import type { ProblemCode } from './problem.js';

/**
 * Problems that refuse a request before the app sees it, because of the client or the
 * load (not a fault of the app): rate limits, open breakers, shedding, size limits,
 * slow bodies, an unavailable rate-limit store.
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

const answered = new WeakMap<ServerResponse, ProblemCode>();

/** Records that `res` was answered with the problem `code` (called by `sendProblem`). */
export function markProblem(res: ServerResponse, code: ProblemCode): void {
  answered.set(res, code);
}

/** The problem code `res` was answered with by `sendProblem`, if any. */
export function problemCodeOf(res: ServerResponse): ProblemCode | undefined {
  return answered.get(res);
}

/** The refusal code (one of {@link REFUSAL_CODES}) `res` was answered with, if any. */
export function refusalOf(res: ServerResponse): ProblemCode | undefined {
  const code = answered.get(res);
  return code !== undefined && REFUSAL_CODES.has(code) ? code : undefined;
}
