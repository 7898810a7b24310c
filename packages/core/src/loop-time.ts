/**
 * Lateness-aware deadlines: a clock that only advances while this process's event loop
 * runs, so a timeout blames the party that was actually late.
 *
 * A plain `setTimeout(timeout)` around a Redis command fires when *our* loop gets to it.
 * When the process is CPU-starved (other processes on the same cores, a burst of requests,
 * a long synchronous job), the reply may have been sitting in the socket for most of that
 * time: the timer then blames a healthy Redis, and every instance falls back to its local
 * counter at once (issue 16: 3 instances, limit 100, 400 admitted). Two measures fix it:
 *
 * 1. **Loop time.** An unref()ed ticker ({@link TICK_MS}) measures how late it fires; the
 *    lateness is time the loop did not run. {@link loopNow} is wall time minus every such
 *    stall (the current, still-unfinished stall included), so a deadline measured with it
 *    only counts time during which we could have read the reply.
 * 2. **One more I/O turn.** When a deadline has passed in loop time, the verdict waits for
 *    one `setImmediate`: that runs after the loop's next poll phase, which reads whatever
 *    Redis already sent. A reply that was waiting in the socket settles the command first.
 *
 * A Redis that is really stopped (SIGSTOP, a dead network) still times out after
 * `commandTimeout` of loop time: an idle loop has no stalls, so loop time is wall time.
 */
import { performance } from 'node:perf_hooks';

/** Ticker period (ms): lateness beyond it counts as a stall. */
export const TICK_MS = 10;

let stalled = 0;
let last = 0;
let ticker: NodeJS.Timeout | undefined;
let users = 0;

function tick(): void {
  const now = performance.now();
  const late = now - last - TICK_MS;
  if (late > 0) stalled += late;
  last = now;
}

/**
 * Starts the ticker (reference-counted; unref()ed so it never keeps the process alive).
 *
 * @returns a function that releases this use
 */
export function useLoopTime(): () => void {
  users++;
  if (ticker === undefined) {
    last = performance.now();
    ticker = setInterval(tick, TICK_MS);
    ticker.unref();
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    users--;
    if (users === 0 && ticker !== undefined) {
      clearInterval(ticker);
      ticker = undefined;
    }
  };
}

/**
 * Milliseconds of loop time: monotonic, advances only while the event loop runs (wall time
 * minus measured stalls). Equal to `performance.now()` minus a constant when the ticker is
 * not running.
 */
export function loopNow(): number {
  const now = performance.now();
  if (ticker === undefined) return now - stalled;
  return now - stalled - Math.max(now - last - TICK_MS, 0);
}

/** Total stall measured so far (ms): for `/health` and the dashboard. */
export function loopStalledMs(): number {
  return stalled;
}

/**
 * Calls `onLate` once `timeout` ms of loop time have passed since now and `settled()` is
 * still false after one more I/O turn; never when `settled()` turned true first. One timer
 * per call; the returned function disarms it.
 *
 * @param timeout ms of loop time
 * @param settled true once the awaited thing happened (the reply arrived)
 * @param onLate called when it is really late
 * @returns disarm
 */
export function armDeadline(timeout: number, settled: () => boolean, onLate: () => void): () => void {
  const start = loopNow();
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const check = () => {
    timer = undefined;
    if (done || settled()) return;
    const left = timeout - (loopNow() - start);
    if (left > 0) {
      timer = setTimeout(check, Math.max(1, Math.ceil(left)));
      return;
    }
    setImmediate(() => {
      if (done || settled()) return;
      done = true;
      onLate();
    });
  };
  timer = setTimeout(check, timeout);
  return () => {
    done = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}

/**
 * True when `startedAt` (a {@link loopNow} reading) is at least `timeout` ms of loop time ago.
 *
 * @param startedAt a {@link loopNow} reading
 * @param timeout ms
 */
export function loopElapsed(startedAt: number, timeout: number): boolean {
  return loopNow() - startedAt >= timeout;
}
