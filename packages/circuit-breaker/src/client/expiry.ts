/**
 * The attempt timers of one client: one clock timer for every attempt in flight, instead of
 * a `setTimeout` + `clearTimeout` pair per attempt (measured: a Node timer object, its list
 * insertion, `unref()` and its removal were the largest single cost the client added to an
 * undici call).
 *
 * Entries sit in a doubly-linked list in arrival order; adding and removing one is O(1) and
 * touches no timer, except when the new entry expires before the one the timer is set for.
 * The timer is set for the earliest expiry; when it fires, every entry due is expired and
 * the timer is set again for the earliest one left. Attempts of one client mostly share one
 * time budget, so the list is nearly sorted and the timer fires about once per budget, not
 * once per attempt. An entry expires no earlier than its own `expiresAt` on the clock, as a
 * timer of its own would.
 */
import type { BreakerClock, TimerHandle } from '../clock.js';

/** What the list holds: an expiry time, the links, and what to do when it is due. */
export interface Expiring {
  /** Clock time (`clock.now()`) at which the entry is due. */
  expiresAt: number;
  prev: Expiring | undefined;
  next: Expiring | undefined;
  /** Linked now (set by the list). */
  linked: boolean;
  /** Called once when the entry is due (after it left the list). */
  expire(): void;
}

export class ExpiryList {
  readonly #clock: BreakerClock;
  #head: Expiring | undefined;
  #tail: Expiring | undefined;
  #timer: TimerHandle | undefined;
  /** The expiry the timer is set for (Infinity: no timer). */
  #armedAt = Number.POSITIVE_INFINITY;

  constructor(clock: BreakerClock) {
    this.#clock = clock;
  }

  /** Adds an entry (at the end); sets the timer sooner if the entry is the earliest. */
  add(entry: Expiring): void {
    entry.prev = this.#tail;
    entry.next = undefined;
    entry.linked = true;
    if (this.#tail === undefined) this.#head = entry;
    else this.#tail.next = entry;
    this.#tail = entry;
    if (entry.expiresAt < this.#armedAt) this.#arm(entry.expiresAt);
  }

  /** Removes an entry that ended before its expiry (no timer is touched). */
  remove(entry: Expiring): void {
    if (!entry.linked) return;
    entry.linked = false;
    const { prev, next } = entry;
    if (prev === undefined) this.#head = next;
    else prev.next = next;
    if (next === undefined) this.#tail = prev;
    else next.prev = prev;
    entry.prev = undefined;
    entry.next = undefined;
  }

  /** Stops the timer (the client is closing). */
  close(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
  }

  #arm(at: number): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#armedAt = at;
    this.#timer = this.#clock.setTimeout(this.#fire, Math.max(0, at - this.#clock.now()));
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    const due: Expiring[] = [];
    let earliest = Number.POSITIVE_INFINITY;
    for (let entry = this.#head; entry !== undefined; entry = entry.next) {
      if (entry.expiresAt <= now) due.push(entry);
      else if (entry.expiresAt < earliest) earliest = entry.expiresAt;
    }
    if (earliest < this.#armedAt) this.#arm(earliest);
    // Unlinked first, expired after: an expiry may add or remove other entries.
    for (const entry of due) this.remove(entry);
    for (const entry of due) entry.expire();
  };
}
