/**
 * The documented order (ARCHITECTURE.md), outermost first, and why:
 *
 * 1. timing — starts the clock, so every request (cache hits too) is measured.
 * 2. cache — serves hits at once, before anything else spends work on them; on a miss it
 *    records the response on its way out.
 * 3. sizeLimit — rejects oversized requests before anything reads their bodies.
 * 4. logger — access log with redaction and the request id.
 * 5. helmet — security headers on everything the app answers.
 * 6. cors — cross-origin headers and preflight, before a limiter could refuse a preflight.
 * 7. rateLimit — per-client limits, counted only for requests that reach the app.
 * 8. circuitBreaker — guards the app's routes (timeouts, bulkheads, open circuits).
 */

/** The layer names, in the documented order. */
export const DEFAULT_ORDER = [
  'timing',
  'cache',
  'sizeLimit',
  'logger',
  'helmet',
  'cors',
  'rateLimit',
  'circuitBreaker',
] as const;

/** A layer of the stack. */
export type LayerName = (typeof DEFAULT_ORDER)[number];
