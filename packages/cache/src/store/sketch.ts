/**
 * The frequency sketch of W-TinyLFU (Einziger, Friedman, Manes, "TinyLFU: A Highly
 * Efficient Cache Admission Policy", ACM ToS 2017): a count-min sketch of 4 rows of
 * 4-bit-range counters (one byte each, saturating at 15) that estimates how often a key
 * was seen recently.
 *
 * Aging ("reset" in the paper): after `sampleSize` increments every counter is halved,
 * so the estimates follow the recent past, not the whole history — a key that was hot
 * an hour ago cannot keep the cache's space forever.
 *
 * The sketch is keyed by a 32-bit hash ({@link hashKey}) the caller computes once and
 * keeps in its node, so a cache hit increments without hashing the key again.
 */

/** Highest value a counter reaches (4 bits, like the paper's and Caffeine's). */
export const MAX_FREQUENCY = 15;
/** Rows of the count-min sketch. */
const DEPTH = 4;
/** Odd multipliers that spread one hash into four row indices (from xxHash32's primes). */
const SEEDS = [0x9e3779b1, 0x85ebca77, 0xc2b2ae3d, 0x27d4eb2f] as const;

/** FNV-1a over the UTF-16 code units of `key`, finished with murmur3's fmix32; 30 bits. */
export function hashKey(key: string): number {
  let h = 0x811c9dc5 | 0; // an int32 from the start: V8 keeps the loop in integer registers
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  // 30 bits: a small integer (Smi) in V8, so a node keeps it in place instead of in a
  // separately allocated HeapNumber (12 bytes and an indirection per entry)
  return h & 0x3fffffff;
}

/** A count-min sketch with periodic halving. */
export class FrequencySketch {
  readonly #table: Uint8Array;
  readonly #width: number;
  /** 32 − log2(width): the shift that keeps the top bits as a row index. */
  readonly #shift: number;
  /** Increments between two halvings. */
  readonly sampleSize: number;
  #additions = 0;

  /**
   * @param capacity the most entries the cache holds: the sketch gets the power of two at
   *   or above `2 × capacity` counters per row (at least 16, at most 2^22): 8 bytes per
   *   entry, like Caffeine's, so that few keys share all four counters with another; it
   *   halves every `10 × capacity` increments (the paper's W = 10·C).
   */
  constructor(capacity: number) {
    let width = 16;
    while (width < 2 * capacity && width < 1 << 22) width *= 2;
    this.#width = width;
    this.#shift = 32 - Math.log2(width);
    this.#table = new Uint8Array(width * DEPTH);
    this.sampleSize = Math.max(10 * capacity, 16);
  }

  /** Multiplicative hashing: the top bits of hash × an odd constant, one constant per row. */
  #index(hash: number, row: number): number {
    return row * this.#width + (Math.imul(hash, SEEDS[row] as number) >>> this.#shift);
  }

  /** Counts one more occurrence of `hash`; halves every counter each `sampleSize` increments. */
  increment(hash: number): void {
    const table = this.#table;
    for (let row = 0; row < DEPTH; row++) {
      const i = this.#index(hash, row);
      if ((table[i] as number) < MAX_FREQUENCY) table[i] = (table[i] as number) + 1;
    }
    if (++this.#additions >= this.sampleSize) this.#age();
  }

  /** The estimated recent frequency of `hash` (0 to {@link MAX_FREQUENCY}); never below the true count, capped and aged. */
  frequency(hash: number): number {
    const table = this.#table;
    let min = MAX_FREQUENCY;
    for (let row = 0; row < DEPTH; row++) {
      const count = table[this.#index(hash, row)] as number;
      if (count < min) min = count;
    }
    return min;
  }

  /** Increments since the last halving. */
  get additions(): number {
    return this.#additions;
  }

  /** Forgets everything (the cache was cleared). */
  clear(): void {
    this.#table.fill(0);
    this.#additions = 0;
  }

  #age(): void {
    const table = this.#table;
    for (let i = 0; i < table.length; i++) table[i] = (table[i] as number) >>> 1;
    this.#additions = 0;
  }
}
