/**
 * The outbound client's time limits with a controllable clock: the overall deadline across
 * attempts and the per-attempt timeout. The origin moves the fake clock forward while it
 * "works", so every figure below is exact.
 */
import {
  BreakerTimeoutError,
  type Client,
  ClientDeadlineError,
  createClient,
  isClientDeadlineError,
} from '@perfstack/circuit-breaker';
import { afterEach, describe, expect, it } from 'vitest';
import { TestOrigin } from './client-origins.js';
import { FakeClock } from './fake-clock.js';

const clients: Client[] = [];
const origins: TestOrigin[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(origins.splice(0).map((o) => o.kill()));
});

/** An origin that takes `ms` of fake time per request, then answers 503. */
async function slowFailing(clock: FakeClock, ms: number): Promise<TestOrigin> {
  const origin = await new TestOrigin('slow', (_req, res) => {
    clock.advance(ms);
    res.statusCode = 503;
    res.end();
  }).start();
  origins.push(origin);
  return origin;
}

describe('overall deadline across retries', () => {
  it('stops at the deadline: 300 ms attempts under a 1 s deadline make 4 attempts, the 4th cut at 1000 ms', async () => {
    const clock = new FakeClock(0);
    const origin = await slowFailing(clock, 300);
    const client = createClient('deadline', {
      origins: origin.url,
      retry: { maxAttempts: 10, initialDelay: 0, maxDelay: 0, deadline: 1000 },
      timeout: false,
      retryBudget: false,
      breaker: { failureThreshold: 100 },
      clock,
    });
    clients.push(client);
    const error = await client.request({ path: '/' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ClientDeadlineError);
    expect(isClientDeadlineError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'DEADLINE_EXCEEDED', status: 504, deadlineMs: 1000, attempts: 4 });
    expect(origin.hits).toBe(4);
    expect(clock.now()).toBe(1200);
    expect(clock.pending).toBe(0);
  });

  it('makes no retry whose backoff would end past the deadline, and answers the last response', async () => {
    const clock = new FakeClock(0);
    const origin = await slowFailing(clock, 300);
    const client = createClient('deadline-backoff', {
      origins: origin.url,
      // Retry 1 waits floor(0.9 · 400) = 360 ms: 300 + 360 = 660 < 1000, allowed.
      // Retry 2 waits floor(0.9 · 800) = 720 ms: 960 + 720 ≥ 1000, not made.
      retry: { maxAttempts: 10, initialDelay: 400, maxDelay: 10_000, multiplier: 2, deadline: 1000 },
      timeout: false,
      retryBudget: false,
      breaker: { failureThreshold: 100 },
      random: () => 0.9,
      clock,
    });
    clients.push(client);
    // Record the fake timers' durations, to tell the backoff timer from the attempt's deadline timer.
    const delays: number[] = [];
    const set = clock.setTimeout;
    clock.setTimeout = (callback: () => void, ms: number) => {
      delays.push(ms);
      return set(callback, ms);
    };
    const pending = client.request({ path: '/' });
    // The backoff timer is on the fake clock: move it on once it is set.
    while (!delays.includes(360)) await new Promise((resolve) => setTimeout(resolve, 5));
    expect(clock.now()).toBe(300);
    clock.advance(360);
    const res = await pending;
    expect(res.statusCode).toBe(503);
    await res.body.dump();
    expect(origin.hits).toBe(2);
    expect(clock.now()).toBe(960);
    // Attempt 1 under the whole deadline (the client's one expiry timer, set for 1000), the
    // backoff; attempt 2's budget (what was left: 340 ms) ends at that same instant, so the
    // timer already set covers it and no other is made.
    expect(delays).toEqual([1000, 360]);
  });
});

describe('per-attempt timeout', () => {
  it('fails an attempt that exceeds timeout with BreakerTimeoutError, and retries it', async () => {
    const clock = new FakeClock(0);
    const origin = await slowFailing(clock, 300);
    const client = createClient('attempt-timeout', {
      origins: origin.url,
      retry: { maxAttempts: 3, initialDelay: 0, maxDelay: 0, deadline: 10_000 },
      timeout: 200,
      retryBudget: false,
      breaker: { failureThreshold: 100 },
      clock,
    });
    clients.push(client);
    const error = await client.request({ path: '/' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BreakerTimeoutError);
    expect(error).toMatchObject({ code: 'TIMEOUT', timeoutMs: 200 });
    expect(origin.hits).toBe(3);
    expect(clock.now()).toBe(900);
    const metrics = await client.registry.metrics();
    expect(metrics).toContain(
      `perfstack_client_requests_total{client="attempt-timeout",origin="${origin.url}",status="timeout"} 3`,
    );
  });
});
