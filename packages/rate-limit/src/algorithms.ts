/**
 * The three algorithms, as pure arithmetic on a small numeric state, shared by the memory
 * store. The Redis store runs the very same arithmetic in Lua (`store/script.ts`); the
 * two are kept line for line alike so that both stores give the same answers at the same
 * instants (the boundary tests run on both).
 *
 * State of one limit for one key: four numbers `[s0, s1, s2, x]`:
 *
 * | algorithm | s0 | s1 | s2 |
 * |---|---|---|---|
 * | fixed window | window start (first counted hit) | hits in the window | — |
 * | sliding window | start of the current clock-aligned window | hits in it | hits in the previous window |
 * | token bucket | deficit × windowMs (tokens missing from a full bucket, scaled) | time of last update | — |
 *
 * `x` is the time a block (`blockDuration`) ends; 0 when not blocked. An all-zero state is
 * an unused key in every algorithm, so a missing key needs no special case.
 *
 * Semantics (README "Algorithms"):
 * - A denied request consumes nothing, in any limit (several limits are all-or-nothing).
 * - Fixed window: the window starts at the first counted hit and lasts `windowMs`
 *   (express-rate-limit's MemoryStore and rate-limit-redis do the same).
 * - Sliding window: windows are aligned on multiples of `windowMs`; the estimate is
 *   `previous × (windowMs − elapsed) / windowMs + current` (the weighted two-window counter).
 * - Token bucket: capacity `limit`, refilled continuously at `limit` per `windowMs`. The
 *   deficit is kept multiplied by `windowMs`, so with integer costs every quantity is an
 *   integer and no rounding error can let one request too many through.
 */

/** Algorithm codes, as passed to the Lua script. */
export const FIXED_WINDOW = 0;
export const SLIDING_WINDOW = 1;
export const TOKEN_BUCKET = 2;

/** One resolved limit, as the stores see it. */
export interface LimitSpec {
  /** {@link FIXED_WINDOW}, {@link SLIDING_WINDOW} or {@link TOKEN_BUCKET}. */
  readonly algorithm: number;
  readonly limit: number;
  readonly windowMs: number;
  /** 0: no block. */
  readonly blockMs: number;
}

/** Numbers per limit in a state array. */
export const STATE_SIZE = 4;

/**
 * Normalises the state at `state[o..o+3]` for time `now` (rolls windows over, refills the
 * bucket) into `next[no..no+3]`, and decides whether `cost` fits.
 *
 * @returns 0 when the request fits in this limit, otherwise the milliseconds (≥ 1) until
 * it would fit (a new block included; `next[no+3]` then holds the block's end)
 */
export function evaluate(
  spec: LimitSpec,
  state: ArrayLike<number>,
  o: number,
  cost: number,
  now: number,
  next: number[],
  no: number,
): number {
  const l = spec.limit;
  const w = spec.windowMs;
  let p0 = state[o] as number;
  let p1 = state[o + 1] as number;
  let p2 = state[o + 2] as number;
  let px = state[o + 3] as number;
  let r = 0;
  if (px > now) {
    r = px - now;
  } else if (spec.algorithm === FIXED_WINDOW) {
    if (p1 <= 0 || now >= p0 + w) {
      p0 = now;
      p1 = 0;
    }
    if (p1 + cost > l) r = p0 + w - now;
  } else if (spec.algorithm === SLIDING_WINDOW) {
    const ws = now - (now % w);
    if (p0 !== ws) {
      if (p0 === ws - w) p2 = p1;
      else p2 = 0;
      p1 = 0;
    }
    p0 = ws;
    const est = (p2 * (w - (now - ws))) / w + p1;
    if (est + cost > l) {
      if (cost > l) r = ws + 2 * w - now;
      else if (p1 + cost <= l) r = Math.ceil(ws + w * (1 - (l - p1 - cost) / p2) - now);
      else r = Math.ceil(ws + w + w * (1 - (l - cost) / p1) - now);
    }
  } else {
    let elapsed = now - p1;
    if (elapsed < 0) elapsed = 0;
    p0 -= elapsed * l;
    if (p0 < 0) p0 = 0;
    p1 = now;
    if (p0 + cost * w > l * w) r = Math.ceil((p0 + cost * w - l * w) / l);
  }
  if (r > 0 && px <= now && spec.blockMs > 0) {
    px = now + spec.blockMs;
    if (spec.blockMs > r) r = spec.blockMs;
  }
  if (r !== 0 && r < 1) r = 1;
  next[no] = p0;
  next[no + 1] = p1;
  next[no + 2] = p2;
  next[no + 3] = px;
  return r;
}

/** Adds `cost` to a normalised state (after every limit said yes). */
export function consume(spec: LimitSpec, next: number[], no: number, cost: number): void {
  if (spec.algorithm === TOKEN_BUCKET) next[no] = (next[no] as number) + cost * spec.windowMs;
  else next[no + 1] = (next[no + 1] as number) + cost;
}

/**
 * Remaining quota and milliseconds until the quota is whole again, for a normalised state.
 * Writes them to `out[oi]` and `out[oi+1]`.
 */
export function describe(
  spec: LimitSpec,
  state: ArrayLike<number>,
  o: number,
  now: number,
  out: number[],
  oi: number,
): void {
  const l = spec.limit;
  const w = spec.windowMs;
  const p0 = state[o] as number;
  const p1 = state[o + 1] as number;
  const p2 = state[o + 2] as number;
  const px = state[o + 3] as number;
  let remaining: number;
  let reset: number;
  if (spec.algorithm === FIXED_WINDOW) {
    remaining = l - p1;
    reset = p1 > 0 ? p0 + w - now : w;
  } else if (spec.algorithm === SLIDING_WINDOW) {
    remaining = Math.floor(l - ((p2 * (w - (now - p0))) / w + p1));
    reset = p1 > 0 ? p0 + 2 * w - now : p2 > 0 ? p0 + w - now : 0;
  } else {
    remaining = Math.floor((l * w - p0) / w);
    reset = Math.ceil(p0 / l);
  }
  if (px > now) {
    remaining = 0;
    if (px - now > reset) reset = px - now;
  }
  out[oi] = Math.max(remaining, 0);
  out[oi + 1] = Math.max(reset, 0);
}
