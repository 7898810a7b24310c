/**
 * A bulkhead: at most `maxConcurrent` calls run at once, at most `maxQueue` wait in FIFO
 * order, the rest are turned away. Waiters are plain callbacks (no promise per request on
 * the inbound path); a waiter that gives up (client disconnected, time budget spent) is
 * removed in O(1).
 */

/** A waiting caller: called once a slot is granted to it. */
export type Waiter = () => void;

export class Bulkhead {
  readonly maxConcurrent: number;
  readonly maxQueue: number;
  #active = 0;
  readonly #queue = new Set<Waiter>();

  constructor(maxConcurrent: number, maxQueue: number) {
    this.maxConcurrent = maxConcurrent;
    this.maxQueue = maxQueue;
  }

  /** Calls running now. */
  get active(): number {
    return this.#active;
  }

  /** Calls waiting now. */
  get queued(): number {
    return this.#queue.size;
  }

  /** Takes a slot if one is free now (no waiter made: the fast path of a call that need not wait). */
  tryEnter(): boolean {
    if (this.#active < this.maxConcurrent) {
      this.#active++;
      return true;
    }
    return false;
  }

  /**
   * Takes a slot now (`'run'`), queues `waiter` (`'queued'`: it is called when a slot is
   * granted) or turns the call away (`'full'`).
   */
  enter(waiter: Waiter): 'run' | 'queued' | 'full' {
    if (this.#active < this.maxConcurrent) {
      this.#active++;
      return 'run';
    }
    if (this.#queue.size < this.maxQueue) {
      this.#queue.add(waiter);
      return 'queued';
    }
    return 'full';
  }

  /** Gives a slot back; the oldest waiter, if any, takes it. */
  leave(): void {
    if (this.#queue.size > 0) {
      const next = this.#queue.values().next().value as Waiter;
      this.#queue.delete(next);
      next();
      return;
    }
    if (this.#active > 0) this.#active--;
  }

  /** Removes a waiter that gave up; returns false if it was not waiting. */
  cancel(waiter: Waiter): boolean {
    return this.#queue.delete(waiter);
  }

  /** Removes and returns every waiter (on close). */
  drain(): Waiter[] {
    const waiters = [...this.#queue];
    this.#queue.clear();
    return waiters;
  }
}
