/**
 * Every state transition of the breaker state machine, driven through the public outbound
 * breaker with a controllable clock (the inbound middleware drives the same machine; its
 * HTTP tests prove the wiring).
 */
import {
  createBreaker,
  isCircuitOpenError,
  type OutboundBreakerOptions,
  type StateChangeEvent,
} from '@perfstack/circuit-breaker';
import { describe, expect, it } from 'vitest';
import { FakeClock } from './fake-clock.js';

const ok = () => Promise.resolve('ok');
const boom = () => Promise.reject(new Error('boom'));

function setup(options: OutboundBreakerOptions = {}) {
  const clock = new FakeClock();
  const breaker = createBreaker({ name: 'dep', clock, ...options });
  const changes: StateChangeEvent[] = [];
  breaker.on('state-change', (e) => changes.push(e));
  const fail = () => breaker.execute(boom).catch((e: unknown) => e);
  const pass = () => breaker.execute(ok).catch((e: unknown) => e);
  return { clock, breaker, changes, fail, pass };
}

/** A call that settles when the test says so. */
function deferred() {
  let resolve!: (v: string) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<string>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('closed → open', () => {
  it('opens on N consecutive failures, and a success in between starts the count again', async () => {
    const { breaker, changes, fail, pass } = setup({ failureThreshold: 3 });
    await fail();
    await fail();
    await pass();
    await fail();
    await fail();
    expect(breaker.state).toBe('closed');
    await fail();
    expect(breaker.state).toBe('open');
    expect(changes.map((c) => [c.from, c.to, c.reason])).toEqual([['closed', 'open', 'consecutive-failures']]);
    const rejected = await pass();
    expect(isCircuitOpenError(rejected)).toBe(true);
    expect(breaker.snapshot()).toMatchObject({ name: 'dep', state: 'open', failures: 5, successes: 1, rejected: 1 });
  });

  it('opens on the failure rate once the minimum volume is reached, not before', async () => {
    const { breaker, changes, fail, pass } = setup({
      failureThreshold: 0,
      failureRateThreshold: 0.5,
      minimumRequests: 6,
      rollingWindow: '10s',
    });
    // 5 calls, 4 failures (80%) but under the minimum volume: stays closed.
    await pass();
    for (let i = 0; i < 4; i++) await fail();
    expect(breaker.state).toBe('closed');
    // The 6th call: 5/6 failed ≥ 50% with 6 calls seen.
    await fail();
    expect(breaker.state).toBe('open');
    expect(changes[0]?.reason).toBe('failure-rate');
  });

  it('forgets outcomes older than the rolling window', async () => {
    const { breaker, clock, fail, pass } = setup({
      failureThreshold: 0,
      failureRateThreshold: 0.5,
      minimumRequests: 4,
      rollingWindow: '10s',
    });
    await fail();
    await fail();
    await fail();
    clock.advance(11_000);
    // The three old failures left the window: 1 failure in 4 calls is 25%.
    await pass();
    await pass();
    await pass();
    await fail();
    expect(breaker.state).toBe('closed');
  });

  it('stays closed under the failure rate', async () => {
    const { breaker, fail, pass } = setup({ failureThreshold: 0, failureRateThreshold: 0.5, minimumRequests: 4 });
    for (let i = 0; i < 10; i++) {
      await pass();
      await pass();
      await fail();
    }
    expect(breaker.state).toBe('closed');
  });

  it('opens on the slow-call rate (successful but slow calls)', async () => {
    const { breaker, clock, changes } = setup({
      failureThreshold: 0,
      slowCallDuration: 100,
      slowCallRateThreshold: 0.5,
      minimumRequests: 4,
    });
    const slowCall = async () => {
      const call = deferred();
      const running = breaker.execute(() => call.promise);
      clock.advance(150);
      call.resolve('late');
      return running;
    };
    await breaker.execute(ok);
    await breaker.execute(ok);
    await slowCall();
    expect(breaker.state).toBe('closed');
    await slowCall();
    expect(breaker.state).toBe('open');
    expect(changes[0]?.reason).toBe('slow-call-rate');
  });
});

describe('open → half-open → closed / open', () => {
  it('turns half-open after resetTimeout, not before, and reports the time left', async () => {
    const { breaker, clock, changes, fail, pass } = setup({ failureThreshold: 1, resetTimeout: '30s' });
    await fail();
    clock.advance(29_999);
    const early = await pass();
    expect(isCircuitOpenError(early)).toBe(true);
    expect((early as { retryAfterMs: number }).retryAfterMs).toBe(1);
    clock.advance(1);
    expect(breaker.state).toBe('half-open');
    expect(changes.map((c) => [c.from, c.to, c.reason])).toEqual([
      ['closed', 'open', 'consecutive-failures'],
      ['open', 'half-open', 'reset-timeout'],
    ]);
  });

  it('lets exactly halfOpenMaxTrials trials through and closes after successThreshold successes', async () => {
    const { breaker, clock, changes, fail } = setup({
      failureThreshold: 1,
      resetTimeout: 1000,
      halfOpenMaxTrials: 3,
      successThreshold: 2,
    });
    await fail();
    clock.advance(1000);
    const trials = [deferred(), deferred(), deferred()];
    let started = 0;
    const running = trials.map((t) =>
      breaker.execute(() => {
        started++;
        return t.promise;
      }),
    );
    // A fourth call while three trials run is turned away.
    const fourth = await breaker.execute(ok).catch((e: unknown) => e);
    expect(isCircuitOpenError(fourth)).toBe(true);
    expect(started).toBe(3);
    trials[0]?.resolve('a');
    await running[0];
    expect(breaker.state).toBe('half-open');
    // Still no free trial slot: a succeeded trial does not give its slot back.
    expect(isCircuitOpenError(await breaker.execute(ok).catch((e: unknown) => e))).toBe(true);
    trials[1]?.resolve('b');
    await running[1];
    expect(breaker.state).toBe('closed');
    expect(changes.at(-1)).toMatchObject({ from: 'half-open', to: 'closed', reason: 'half-open-successes' });
    // The third trial settling late changes nothing.
    trials[2]?.reject(new Error('late'));
    await running[2]?.catch(() => undefined);
    expect(breaker.state).toBe('closed');
  });

  it('reopens on a failed trial, with a fresh resetTimeout', async () => {
    const { breaker, clock, changes, fail, pass } = setup({ failureThreshold: 1, resetTimeout: 1000 });
    await fail();
    clock.advance(1000);
    await fail();
    expect(breaker.state).toBe('open');
    expect(changes.at(-1)).toMatchObject({ from: 'half-open', to: 'open', reason: 'half-open-failure' });
    clock.advance(999);
    expect(isCircuitOpenError(await pass())).toBe(true);
    clock.advance(1);
    expect(await pass()).toBe('ok');
    expect(breaker.state).toBe('closed');
  });

  it('reopens on a slow trial when slow calls are measured', async () => {
    const { breaker, clock, changes, fail } = setup({
      failureThreshold: 1,
      resetTimeout: 1000,
      slowCallDuration: 100,
    });
    await fail();
    clock.advance(1000);
    const call = deferred();
    const running = breaker.execute(() => call.promise);
    clock.advance(200);
    call.resolve('slow');
    await running;
    expect(breaker.state).toBe('open');
    expect(changes.at(-1)).toMatchObject({ from: 'half-open', to: 'open', reason: 'slow-call-rate' });
  });

  it('a failure of a call started before the breaker opened does not reopen it later', async () => {
    const { breaker, clock, fail } = setup({ failureThreshold: 1, resetTimeout: 1000 });
    const old = deferred();
    const running = breaker.execute(() => old.promise);
    await fail();
    clock.advance(1000);
    expect(await breaker.execute(ok)).toBe('ok');
    expect(breaker.state).toBe('closed');
    old.reject(new Error('stale'));
    await running.catch(() => undefined);
    expect(breaker.state).toBe('closed');
  });

  it('reset() closes an open breaker (manual-reset) and forgets the failure count', async () => {
    const { breaker, changes, fail } = setup({ failureThreshold: 2 });
    await fail();
    await fail();
    expect(breaker.state).toBe('open');
    breaker.reset();
    expect(breaker.state).toBe('closed');
    expect(changes.at(-1)).toMatchObject({ from: 'open', to: 'closed', reason: 'manual-reset' });
    await fail();
    expect(breaker.state).toBe('closed');
  });

  it('a disposed listener hears nothing more', async () => {
    const { breaker, fail } = setup({ failureThreshold: 1 });
    const seen: string[] = [];
    const sub = breaker.on('state-change', (e) => seen.push(e.to));
    sub.dispose();
    await fail();
    expect(seen).toEqual([]);
  });
});
