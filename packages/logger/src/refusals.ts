/**
 * Refusal aggregation: the stack's own refusals (429, 503 open/shed, 413/414/431, 408 slow
 * body) are written at most once per reason per client per interval.
 *
 * A client being rate limited can send thousands of requests a second; one warn line each
 * (88,539 lines, 36.8 MB in 8 minutes in the report that led here) buries every other line
 * and costs more than the refusal itself. So the first refusal of a (reason, client) pair
 * is logged as usual; the next ones within `refusalInterval` are counted, not written; the
 * next line of the pair carries `suppressed: n`, the number of lines left out since the
 * last one. A pair that goes quiet (no refusal for a whole interval) gets a summary line
 * (`msg: 'refusals suppressed'`) instead, and `close()` writes the summaries still owed, so
 * no count is lost and a pair never gets two lines within one interval.
 * Metrics are not touched: every refusal is still counted by the layer that refused it.
 *
 * Memory is bounded: at most {@link MAX_TRACKED_CLIENTS} pairs are tracked; past that,
 * further clients share one pair per reason (client `*`).
 */

/** Most (reason, client) pairs tracked at once. */
export const MAX_TRACKED_CLIENTS = 10_000;

/** The client key used once {@link MAX_TRACKED_CLIENTS} pairs are tracked. */
export const OVERFLOW_CLIENT = '*';

interface Pair {
  readonly reason: string;
  readonly client: string;
  /** When the pair's current interval began (its last written line). */
  start: number;
  /** Lines left out since the last written line. */
  suppressed: number;
  /** When its last refusal was seen. */
  last: number;
}

/** A summary of lines left out for a pair that went quiet. */
export interface SuppressedSummary {
  readonly refused: string;
  readonly client: string;
  readonly suppressed: number;
}

/** Decides, per refusal, whether its line is written. */
export class RefusalAggregator {
  readonly #interval: number;
  readonly #clock: () => number;
  readonly #pairs = new Map<string, Pair>();
  readonly #summary: (summary: SuppressedSummary) => void;
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param intervalMs the interval; 0 turns aggregation off (every refusal is written)
   * @param summary writes the summary line of a pair that went quiet
   * @param clock the clock (ms)
   */
  constructor(intervalMs: number, summary: (summary: SuppressedSummary) => void, clock: () => number = Date.now) {
    this.#interval = intervalMs;
    this.#summary = summary;
    this.#clock = clock;
  }

  /**
   * Called for each refusal as its response finishes.
   *
   * @returns `-1` when the line is left out, otherwise the number of lines left out before it
   */
  admit(reason: string, client: string): number {
    if (this.#interval <= 0) return 0;
    const now = this.#clock();
    let id = `${reason}\u0000${client}`;
    let pair = this.#pairs.get(id);
    if (pair === undefined && this.#pairs.size >= MAX_TRACKED_CLIENTS) {
      id = `${reason}\u0000${OVERFLOW_CLIENT}`;
      pair = this.#pairs.get(id);
      client = OVERFLOW_CLIENT;
    }
    if (pair === undefined) {
      this.#pairs.set(id, { reason, client, start: now, suppressed: 0, last: now });
      this.#arm();
      return 0;
    }
    pair.last = now;
    if (now - pair.start < this.#interval) {
      pair.suppressed++;
      return -1;
    }
    const suppressed = pair.suppressed;
    pair.start = now;
    pair.suppressed = 0;
    return suppressed;
  }

  /**
   * For a refusal answered before the access log sees it (the stack's early refusals): when
   * {@link admit} would leave its line out, counts it as left out and returns `true`;
   * otherwise changes nothing and returns `false` (the refusal then takes the usual path,
   * and {@link admit} writes its line).
   */
  suppress(reason: string, client: string): boolean {
    if (this.#interval <= 0) return false;
    let pair = this.#pairs.get(`${reason}\u0000${client}`);
    if (pair === undefined && this.#pairs.size >= MAX_TRACKED_CLIENTS) {
      pair = this.#pairs.get(`${reason}\u0000${OVERFLOW_CLIENT}`);
    }
    if (pair === undefined) return false;
    const now = this.#clock();
    if (now - pair.start >= this.#interval) return false;
    pair.last = now;
    pair.suppressed++;
    return true;
  }

  /**
   * Writes the summaries owed by pairs quiet for a whole interval (all of them with `all`)
   * and forgets those pairs. A pair still refused meanwhile keeps its count for its next line.
   */
  sweep(all = false): void {
    const now = this.#clock();
    for (const [id, pair] of this.#pairs) {
      if (!all && now - pair.last < this.#interval) continue;
      this.#pairs.delete(id);
      if (pair.suppressed > 0) {
        this.#summary({ refused: pair.reason, client: pair.client, suppressed: pair.suppressed });
      }
    }
    if (this.#pairs.size === 0) this.#disarm();
  }

  /** Writes every summary still owed and stops the timer. */
  close(): void {
    this.sweep(true);
    this.#disarm();
  }

  #arm(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.sweep(), this.#interval);
    this.#timer.unref();
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
