/**
 * The retry budget (as in Finagle's `RetryBudget` and the SRE book, ch. 22 "Addressing
 * Cascading Failures"): over a sliding window, retries may be at most `ratio` of the
 * requests plus a small reserve of `minPerSecond`, so that during a full outage the client
 * adds at most `ratio` more load instead of multiplying it by `maxAttempts`.
 *
 * The window is ten slots of `window / 10`; old slots are reused in place, so the budget
 * costs two small arrays and no timer.
 */
import type { BreakerClock } from '../clock.js';

const SLOTS = 10;

export class RetryBudget {
  readonly ratio: number;
  readonly minPerSecond: number;
  readonly windowMs: number;
  readonly #clock: BreakerClock;
  readonly #slotMs: number;
  readonly #stamps = new Array<number>(SLOTS).fill(-1);
  readonly #requests = new Array<number>(SLOTS).fill(0);
  readonly #retries = new Array<number>(SLOTS).fill(0);

  constructor(ratio: number, minPerSecond: number, windowMs: number, clock: BreakerClock) {
    this.ratio = ratio;
    this.minPerSecond = minPerSecond;
    this.windowMs = windowMs;
    this.#clock = clock;
    this.#slotMs = Math.max(1, windowMs / SLOTS);
  }

  /** Counts a request (the first attempt of a call). */
  onRequest(): void {
    const slot = this.#slot();
    this.#requests[slot] = (this.#requests[slot] as number) + 1;
  }

  /** Retries ÷ requests over the window (0 without requests): the retry-rate KPI. */
  rate(): number {
    this.#slot();
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < SLOTS; i++) {
      requests += this.#requests[i] as number;
      retries += this.#retries[i] as number;
    }
    return requests === 0 ? 0 : retries / requests;
  }

  /** Counts a retry made without asking the budget (budget off: only the rate is kept). */
  onRetry(): void {
    const slot = this.#slot();
    this.#retries[slot] = (this.#retries[slot] as number) + 1;
  }

  /** Takes one retry from the budget; false when the budget is spent. */
  tryRetry(): boolean {
    const slot = this.#slot();
    let requests = 0;
    let retries = 0;
    for (let i = 0; i < SLOTS; i++) {
      requests += this.#requests[i] as number;
      retries += this.#retries[i] as number;
    }
    const allowance = this.ratio * requests + (this.minPerSecond * this.windowMs) / 1000;
    // The epsilon keeps 0.1 × 10 requests = 1 retry despite binary floating point.
    if (retries + 1 > allowance + 1e-9) return false;
    this.#retries[slot] = (this.#retries[slot] as number) + 1;
    return true;
  }

  /** Index of the current slot, clearing slots that fell out of the window. */
  #slot(): number {
    const tick = Math.floor(this.#clock.now() / this.#slotMs);
    const index = tick % SLOTS;
    if (this.#stamps[index] !== tick) {
      for (let i = 0; i < SLOTS; i++) {
        const stamp = this.#stamps[i] as number;
        if (stamp !== -1 && tick - stamp >= SLOTS) {
          this.#stamps[i] = -1;
          this.#requests[i] = 0;
          this.#retries[i] = 0;
        }
      }
      this.#stamps[index] = tick;
      this.#requests[index] = 0;
      this.#retries[index] = 0;
    }
    return index;
  }
}
