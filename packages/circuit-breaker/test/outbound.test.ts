/**
 * The outbound breaker: retries (counts, retryable errors, backoff bounds with full jitter),
 * time budget, bulkhead, and `fire` with the breaker's own function.
 */
import {
  BreakerTimeoutError,
  createBreaker,
  fullJitterDelay,
  isBreakerTimeoutError,
  isBulkheadFullError,
  isCircuitOpenError,
  type RetryEvent,
} from '@perfstack/circuit-breaker';
import { createRegistry } from '@perfstack/core';
import { describe, expect, it } from 'vitest';
import { FakeClock } from './fake-clock.js';

class Transient extends Error {}
class Permanent extends Error {}

describe('retry with exponential backoff and full jitter', () => {
  it('retries retryable errors up to maxAttempts attempts in all, then gives up with the last error', async () => {
    const breaker = createBreaker({
      name: 'api',
      failureThreshold: 100,
      retry: { maxAttempts: 4, initialDelay: 1, maxDelay: 4, retryable: (e) => e instanceof Transient },
      random: () => 0.5,
    });
    const retries: RetryEvent[] = [];
    breaker.on('retry', (e) => retries.push(e));
    let calls = 0;
    const error = await breaker
      .execute(() => {
        calls++;
        return Promise.reject(new Transient(`attempt ${calls}`));
      })
      .catch((e: unknown) => e);
    expect(calls).toBe(4);
    expect((error as Error).message).toBe('attempt 4');
    expect(retries.map((r) => [r.attempt, r.delayMs])).toEqual([
      [2, 0],
      [3, 1],
      [4, 2],
    ]);
    expect(breaker.snapshot()).toMatchObject({ failures: 4, successes: 0 });
  });

  it('does not retry errors that are not retryable', async () => {
    const breaker = createBreaker({
      retry: { maxAttempts: 5, initialDelay: 1, retryable: (e) => e instanceof Transient },
    });
    let calls = 0;
    await expect(
      breaker.execute(() => {
        calls++;
        throw new Permanent('no');
      }),
    ).rejects.toThrow('no');
    expect(calls).toBe(1);
  });

  it('succeeds on a later attempt', async () => {
    const breaker = createBreaker({ retry: { maxAttempts: 3, initialDelay: 1 } });
    let calls = 0;
    const value = await breaker.execute(async (x: number) => {
      calls++;
      if (calls < 3) throw new Transient('flaky');
      return x * 2;
    }, 21);
    expect([value, calls]).toEqual([42, 3]);
  });

  it('stops retrying when the breaker opens (an open circuit is never retried)', async () => {
    const breaker = createBreaker({ failureThreshold: 2, retry: { maxAttempts: 10, initialDelay: 1 } });
    let calls = 0;
    const error = await breaker
      .execute(() => {
        calls++;
        return Promise.reject(new Transient('down'));
      })
      .catch((e: unknown) => e);
    expect(calls).toBe(2);
    expect(isCircuitOpenError(error)).toBe(true);
  });

  it('backoff delays stay within [0, min(maxDelay, initialDelay·2^n)) for every draw', async () => {
    const draws = [0, 0.25, 0.5, 0.999_999];
    for (const draw of draws) {
      const breaker = createBreaker({
        failureThreshold: 100,
        retry: { maxAttempts: 7, initialDelay: 1, maxDelay: 8 },
        random: () => draw,
      });
      const delays: number[] = [];
      breaker.on('retry', (e) => delays.push(e.delayMs));
      await breaker.execute(() => Promise.reject(new Transient('x'))).catch(() => undefined);
      const caps = [1, 2, 4, 8, 8, 8];
      expect(delays).toHaveLength(6);
      delays.forEach((delay, n) => {
        expect(delay).toBeGreaterThanOrEqual(0);
        expect(delay).toBeLessThan(caps[n] as number);
        expect(delay).toBe(Math.floor(draw * (caps[n] as number)));
      });
    }
  });

  it('fullJitterDelay: the bounds on large numbers, with the extreme draws', () => {
    for (let n = 0; n < 20; n++) {
      const cap = Math.min(30_000, 100 * 2 ** n);
      expect(fullJitterDelay(n, 100, 30_000, () => 0)).toBe(0);
      expect(fullJitterDelay(n, 100, 30_000, () => 0.999_999_999)).toBe(cap - 1);
    }
  });
});

describe('timeout and bulkhead', () => {
  it('a call over its budget fails with BreakerTimeoutError and counts as a failure', async () => {
    const clock = new FakeClock();
    const breaker = createBreaker({ name: 'slow-db', timeout: '2s', failureThreshold: 1, clock });
    const timeouts: unknown[] = [];
    breaker.on('timeout', (e) => timeouts.push(e));
    const running = breaker.execute(() => new Promise(() => undefined));
    clock.advance(1999);
    expect(timeouts).toEqual([]);
    clock.advance(1);
    const error = await running.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BreakerTimeoutError);
    expect(isBreakerTimeoutError(error)).toBe(true);
    expect((error as BreakerTimeoutError).timeoutMs).toBe(2000);
    expect(timeouts).toEqual([{ name: 'slow-db', timeoutMs: 2000 }]);
    expect(breaker.snapshot()).toMatchObject({ state: 'open', timeouts: 1, failures: 1 });
  });

  it('a call within its budget clears its timer', async () => {
    const clock = new FakeClock();
    const breaker = createBreaker({ timeout: 1000, clock });
    expect(await breaker.execute(() => Promise.resolve('fast'))).toBe('fast');
    expect(clock.pending).toBe(0);
  });

  it('maxConcurrent runs, maxQueue waits, the rest fail with BulkheadFullError (not counted as failures)', async () => {
    const registry = createRegistry();
    const breaker = createBreaker({ name: 'pool', maxConcurrent: 2, maxQueue: 1, failureThreshold: 1, registry });
    const releases: Array<() => void> = [];
    let started = 0;
    const job = () =>
      new Promise<string>((resolve) => {
        started++;
        releases.push(() => resolve('done'));
      });
    const running = [breaker.execute(job), breaker.execute(job), breaker.execute(job)];
    const rejected = await breaker.execute(job).catch((e: unknown) => e);
    expect(isBulkheadFullError(rejected)).toBe(true);
    expect(started).toBe(2);
    expect(breaker.snapshot()).toMatchObject({ active: 2, queued: 1, state: 'closed' });
    releases[0]?.();
    await running[0];
    await Promise.resolve();
    expect(started).toBe(3);
    releases[1]?.();
    releases[2]?.();
    expect(await Promise.all(running)).toEqual(['done', 'done', 'done']);
    expect(breaker.snapshot()).toMatchObject({ active: 0, queued: 0, state: 'closed', failures: 0 });
    expect(await registry.metrics()).toContain('perfstack_circuit_breaker_rejections_total{breaker="pool"} 1');
  });

  it('errors that isFailure rejects pass through without counting against the breaker', async () => {
    const breaker = createBreaker({ failureThreshold: 1, isFailure: (e) => !(e instanceof Permanent) });
    await expect(breaker.execute(() => Promise.reject(new Permanent('404')))).rejects.toThrow('404');
    expect(breaker.state).toBe('closed');
    await expect(breaker.execute(() => Promise.reject(new Transient('503')))).rejects.toThrow('503');
    expect(breaker.state).toBe('open');
  });
});

describe('fire and execute', () => {
  it('fire() calls the breaker function with its arguments; the name defaults to the function name', async () => {
    async function getUser(id: string, verbose: boolean) {
      return { id, verbose };
    }
    const breaker = createBreaker(getUser);
    expect(breaker.name).toBe('getUser');
    expect(await breaker.fire('42', true)).toEqual({ id: '42', verbose: true });
  });

  it('fire() without a function rejects with a TypeError; a sync throw becomes a rejection', async () => {
    const breaker = createBreaker({ name: 'x' });
    await expect(breaker.fire()).rejects.toThrow(/created without a function/);
    await expect(
      breaker.execute(() => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
  });
});
