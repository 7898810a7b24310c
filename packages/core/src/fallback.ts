/**
 * Stale fallbacks: how an inner layer that is about to answer with an error (the circuit
 * breaker's 503 `CIRCUIT_OPEN`, a 504 `TIMEOUT`) lets an outer layer (the cache) answer
 * with a stale entry instead, when the route allows `stale-if-error` (RFC 5861 §4).
 *
 * The cache registers a fallback on a request it could not serve fresh; the breaker calls
 * {@link tryFallback} before it sends its problem. Neither layer knows the other.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Answers the response with a fallback; returns true if it did. */
export type Fallback = (res: ServerResponse, reason: 'circuit-open' | 'timeout' | 'overloaded' | 'error') => boolean;

const FALLBACK = Symbol.for('perfstack.fallback');

type FallbackRequest = IncomingMessage & { [FALLBACK]?: Fallback };

/** Registers the fallback for this request (the last registration wins). */
export function setFallback(req: IncomingMessage, fallback: Fallback): void {
  (req as FallbackRequest)[FALLBACK] = fallback;
}

/**
 * Lets a registered fallback answer. Returns true when it did, in which case the caller
 * must not write anything more.
 */
export function tryFallback(req: IncomingMessage, res: ServerResponse, reason: Parameters<Fallback>[1]): boolean {
  const fallback = (req as FallbackRequest)[FALLBACK];
  if (fallback === undefined || res.headersSent) return false;
  return fallback(res, reason);
}

const ORIGIN_STATUS = Symbol.for('perfstack.originStatus');

type StatusResponse = ServerResponse & { [ORIGIN_STATUS]?: number };

/**
 * Records the status the origin answered with, before a layer replaced the response (the
 * cache serving a stale entry over a 5xx). Layers that judge the origin — the circuit
 * breaker — read {@link originStatus}, so a failing origin still counts as failing while
 * clients get the stale copy.
 */
export function markOriginStatus(res: ServerResponse, status: number): void {
  (res as StatusResponse)[ORIGIN_STATUS] = status;
}

/** The origin's own status: the one recorded by {@link markOriginStatus}, else `res.statusCode`. */
export function originStatus(res: ServerResponse): number {
  return (res as StatusResponse)[ORIGIN_STATUS] ?? res.statusCode;
}
