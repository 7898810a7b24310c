/**
 * The contract between the middleware and its stores. Both stores decide every limit of a
 * request at once (all-or-nothing) and answer in one flat array of numbers, so the
 * middleware has one code path for both and the Redis reply needs no reshaping:
 *
 * `[deniedMask, retryMs, remaining₀, resetMs₀, remaining₁, resetMs₁, ...]`
 *
 * - `deniedMask`: 0 when the request is allowed; otherwise bit `i` is set for each limit
 *   `i` that refused it.
 * - `retryMs`: when denied, the milliseconds until the request would be allowed (what
 *   `Retry-After` says); 0 when allowed.
 * - `remaining`/`resetMs` per limit, after this request's consumption (none when denied).
 */

/** The decision array described in the module comment. */
export type Decision = readonly number[];

/** Position of limit `i`'s remaining quota in a {@link Decision}. */
export const remainingAt = (i: number): number => 2 + 2 * i;

/** A decision store. */
export interface DecisionStore {
  /**
   * Decides a request. `now` is the caller's clock; the Redis store receives `-1` when
   * no clock was injected, and then reads Redis's own `TIME` (one clock for the fleet).
   * With `dry`, nothing is written and `cost` should be 0 (a read for `getKey`).
   */
  decide(key: string, cost: number, now: number, dry: boolean): Decision | Promise<Decision>;
  /** Forgets the per-client state of `key`. */
  reset(key: string): void | Promise<void>;
  /** Releases timers. */
  close(): void;
}
