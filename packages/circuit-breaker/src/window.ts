/**
 * A rolling window of call outcomes in fixed time buckets (like Hystrix and cockatiel's
 * SamplingBreaker): ten buckets span the window, a bucket older than the window is zeroed
 * when its slot comes round again. Reading the totals sums ten small records; nothing is
 * allocated per call.
 */
const BUCKETS = 10;

interface Bucket {
  /** Which bucket-sized slice of time this bucket holds (floor(now / bucketMs)). */
  slice: number;
  calls: number;
  failures: number;
  slow: number;
}

/** Totals over the window. */
export interface WindowTotals {
  calls: number;
  failures: number;
  slow: number;
}

export class RollingWindow {
  readonly #bucketMs: number;
  readonly #buckets: Bucket[];
  readonly #totals: WindowTotals = { calls: 0, failures: 0, slow: 0 };

  constructor(windowMs: number) {
    this.#bucketMs = Math.max(1, Math.ceil(windowMs / BUCKETS));
    this.#buckets = Array.from({ length: BUCKETS }, () => ({ slice: -1, calls: 0, failures: 0, slow: 0 }));
  }

  /** Records one call outcome at time `now`. */
  add(now: number, failed: boolean, slow: boolean): void {
    const slice = Math.floor(now / this.#bucketMs);
    const bucket = this.#buckets[slice % BUCKETS] as Bucket;
    if (bucket.slice !== slice) {
      bucket.slice = slice;
      bucket.calls = 0;
      bucket.failures = 0;
      bucket.slow = 0;
    }
    bucket.calls++;
    if (failed) bucket.failures++;
    if (slow) bucket.slow++;
  }

  /** The totals of the buckets inside the window ending at `now` (the returned object is reused). */
  totals(now: number): Readonly<WindowTotals> {
    const current = Math.floor(now / this.#bucketMs);
    const totals = this.#totals;
    totals.calls = 0;
    totals.failures = 0;
    totals.slow = 0;
    for (const bucket of this.#buckets) {
      if (bucket.slice > current - BUCKETS && bucket.slice <= current) {
        totals.calls += bucket.calls;
        totals.failures += bucket.failures;
        totals.slow += bucket.slow;
      }
    }
    return totals;
  }

  /** Forgets every outcome. */
  clear(): void {
    for (const bucket of this.#buckets) {
      bucket.slice = -1;
      bucket.calls = 0;
      bucket.failures = 0;
      bucket.slow = 0;
    }
  }
}
