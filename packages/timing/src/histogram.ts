/**
 * A fixed-size log-linear latency histogram (the HdrHistogram bucket layout, written
 * small for this one job; the README says why hdr-histogram-js is not used).
 *
 * Values are recorded in whole microseconds. Below 32 µs every value has its own bucket;
 * above, each power of two is split into 32 equal sub-buckets, so a bucket is at most
 * 1/32 of its lower bound wide and the value reported for it (its midpoint) is within
 * 1/64 (about 1.6 %) of any value it holds. Values from 0 to 2^31 - 1 µs (about 35
 * minutes) are tracked; longer ones land in the last bucket; `min` and `max` stay exact and bound every percentile.
 *
 * One histogram is a `Uint32Array` of {@link BUCKET_COUNT} counters (3.4 KB), recording
 * is O(1) with no allocation, and merging two histograms is one pass over the counters.
 */

const SUB_BUCKET_BITS = 5;
/** Sub-buckets per power of two. */
const SUB_BUCKETS = 1 << SUB_BUCKET_BITS;
/** The largest value tracked, in microseconds. */
const MAX_MICROS = 0x7fffffff;

/** Number of counters in one histogram. */
export const BUCKET_COUNT = SUB_BUCKETS + (31 - SUB_BUCKET_BITS) * SUB_BUCKETS;

/** The largest relative error of a reported percentile: half a bucket width over its lower bound. */
export const RELATIVE_PRECISION = 1 / (2 * SUB_BUCKETS);

/** The bucket that holds `micros` (a non-negative int32). */
export function bucketIndex(micros: number): number {
  if (micros < SUB_BUCKETS) return micros;
  const power = 31 - Math.clz32(micros);
  const shift = power - SUB_BUCKET_BITS;
  return SUB_BUCKETS + shift * SUB_BUCKETS + ((micros >>> shift) - SUB_BUCKETS);
}

/** The value reported for bucket `index`, in microseconds: the middle of the values it holds. */
export function bucketValue(index: number): number {
  if (index < SUB_BUCKETS) return index;
  const shift = Math.floor((index - SUB_BUCKETS) / SUB_BUCKETS);
  const sub = (index - SUB_BUCKETS) % SUB_BUCKETS;
  const lower = (SUB_BUCKETS + sub) * 2 ** shift;
  const width = 2 ** shift;
  return lower + (width - 1) / 2;
}

/** A latency histogram in milliseconds with bounded memory. */
export class LatencyHistogram {
  readonly counts = new Uint32Array(BUCKET_COUNT);
  count = 0;
  /** Sum of recorded values, ms. */
  sum = 0;
  /** Largest recorded value, ms (exact). */
  max = 0;
  /** Smallest recorded value, ms (exact; `Infinity` when empty). */
  min = Number.POSITIVE_INFINITY;

  /** Records one duration in milliseconds. Negative and NaN values count as 0. */
  record(ms: number): void {
    // A clock that went backwards (negative) or broke (NaN: `|| 0`) counts as 0.
    const value = Math.max(ms, 0) || 0;
    const micros = Math.min(Math.round(value * 1000), MAX_MICROS);
    (this.counts[bucketIndex(micros)] as number)++;
    this.count++;
    this.sum += value;
    if (value > this.max) this.max = value;
    if (value < this.min) this.min = value;
  }

  /** Adds every count of `other` into this histogram. */
  add(other: LatencyHistogram): void {
    if (other.count === 0) return;
    const mine = this.counts;
    const theirs = other.counts;
    for (let i = 0; i < BUCKET_COUNT; i++) {
      const c = theirs[i] as number;
      if (c !== 0) mine[i] = (mine[i] as number) + c;
    }
    this.count += other.count;
    this.sum += other.sum;
    if (other.max > this.max) this.max = other.max;
    if (other.min < this.min) this.min = other.min;
  }

  /** Forgets every value. */
  reset(): void {
    if (this.count === 0) return;
    this.counts.fill(0);
    this.count = 0;
    this.sum = 0;
    this.max = 0;
    this.min = Number.POSITIVE_INFINITY;
  }

  /** Mean in ms, 0 when empty. */
  mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /**
   * The value at `percentile` (0..100) in ms by the nearest-rank rule, within
   * {@link RELATIVE_PRECISION} of the true value, never outside `[min, max]`; 0 when empty.
   */
  percentile(percentile: number): number {
    return this.percentiles([percentile])[0] as number;
  }

  /** Several percentiles (ascending) in one pass over the counters. */
  percentiles(percentiles: readonly number[]): number[] {
    const out: number[] = new Array(percentiles.length).fill(0);
    if (this.count === 0) return out;
    let next = 0;
    let rank = Math.max(1, Math.ceil(((percentiles[0] as number) / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKET_COUNT && next < percentiles.length; i++) {
      seen += this.counts[i] as number;
      while (seen >= rank && next < percentiles.length) {
        out[next] = Math.max(this.min, Math.min(bucketValue(i) / 1000, this.max));
        next++;
        if (next < percentiles.length) {
          rank = Math.max(1, Math.ceil(((percentiles[next] as number) / 100) * this.count));
        }
      }
    }
    return out;
  }
}
