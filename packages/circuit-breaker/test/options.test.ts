/** Bad option values fail at construction, naming the option, the value and the accepted form. */
import { circuitBreaker, createBreaker } from '@perfstack/circuit-breaker';
import { describe, expect, it } from 'vitest';

const PKG = '@perfstack/circuit-breaker';

type Row = readonly [label: string, options: unknown, error: typeof TypeError | typeof RangeError, message: RegExp];

const middlewareRows: Row[] = [
  ['not an object', 'fast', TypeError, /circuitBreaker\(options\) takes an options object, got "fast"/],
  ['unknown key', { failureTreshold: 3 }, TypeError, /unknown option "failureTreshold"/],
  ['failureThreshold negative', { failureThreshold: -1 }, RangeError, /"failureThreshold" must be an integer from 0/],
  ['failureThreshold fractional', { failureThreshold: 1.5 }, TypeError, /"failureThreshold" must be an integer/],
  [
    'failureThreshold 0 with nothing else',
    { failureThreshold: 0 },
    RangeError,
    /"failureThreshold" must be at least 1 unless/,
  ],
  ['resetTimeout bad string', { resetTimeout: 'soon' }, TypeError, /"resetTimeout" must be milliseconds/],
  ['resetTimeout zero', { resetTimeout: 0 }, RangeError, /"resetTimeout" must be a duration from 1ms/],
  ['timeout negative', { timeout: -5 }, RangeError, /"timeout" must be a duration from 1ms/],
  ['timeout true', { timeout: true }, TypeError, /"timeout" must be milliseconds/],
  ['maxConcurrent zero', { maxConcurrent: 0 }, RangeError, /"maxConcurrent" must be an integer from 1/],
  ['maxConcurrent string', { maxConcurrent: '4' }, TypeError, /"maxConcurrent" must be an integer/],
  ['maxQueue without maxConcurrent', { maxQueue: 5 }, RangeError, /"maxQueue" needs "maxConcurrent"/],
  ['maxQueue negative', { maxConcurrent: 1, maxQueue: -1 }, RangeError, /"maxQueue" must be an integer from 0/],
  ['adaptiveConcurrency string', { adaptiveConcurrency: 'on' }, TypeError, /"adaptiveConcurrency" must be true, false/],
  [
    'adaptiveConcurrency unknown key',
    { adaptiveConcurrency: { limit: 5 } },
    TypeError,
    /unknown option "limit" for circuitBreaker\(\{ adaptiveConcurrency \}\)/,
  ],
  [
    'adaptiveConcurrency maxLimit below minLimit',
    { adaptiveConcurrency: { minLimit: 10, maxLimit: 5 } },
    RangeError,
    /"adaptiveConcurrency.maxLimit" must be ≥ minLimit \(10\), got 5/,
  ],
  [
    'adaptiveConcurrency initialLimit over maxLimit',
    { adaptiveConcurrency: { maxLimit: 5, initialLimit: 6 } },
    RangeError,
    /"adaptiveConcurrency.initialLimit" must be an integer from 1 to 5/,
  ],
  [
    'adaptiveConcurrency smoothing zero',
    { adaptiveConcurrency: { smoothing: 0 } },
    RangeError,
    /"adaptiveConcurrency.smoothing" must be a number from 0.01 to 1/,
  ],
  [
    'adaptiveConcurrency minRttInterval bad',
    { adaptiveConcurrency: { minRttInterval: 'often' } },
    TypeError,
    /"adaptiveConcurrency.minRttInterval" must be milliseconds/,
  ],
  [
    'adaptiveConcurrency scope bad',
    { adaptiveConcurrency: { scope: 'process' } },
    TypeError,
    /"adaptiveConcurrency.scope" must be 'route' or 'global'/,
  ],
  [
    'adaptiveConcurrency scope on a route',
    { routes: { '/x': { adaptiveConcurrency: { scope: 'global' } } } },
    RangeError,
    /"routes\["\/x"\].adaptiveConcurrency.scope" can only be set at the top level/,
  ],
  [
    'failureRateThreshold over 1',
    { failureRateThreshold: 50 },
    RangeError,
    /"failureRateThreshold" must be a number from 0 to 1/,
  ],
  [
    'failureRateThreshold zero',
    { failureRateThreshold: 0 },
    RangeError,
    /"failureRateThreshold" must be a number greater than 0/,
  ],
  ['minimumRequests zero', { minimumRequests: 0 }, RangeError, /"minimumRequests" must be an integer from 1/],
  ['rollingWindow tiny', { rollingWindow: 1 }, RangeError, /"rollingWindow" must be a duration from 10ms/],
  ['slowCallDuration bad', { slowCallDuration: '1 fortnight' }, TypeError, /"slowCallDuration" must be milliseconds/],
  [
    'slowCallRateThreshold alone',
    { slowCallRateThreshold: 0.5 },
    RangeError,
    /"slowCallRateThreshold" must be set together with "slowCallDuration"/,
  ],
  ['halfOpenMaxTrials zero', { halfOpenMaxTrials: 0 }, RangeError, /"halfOpenMaxTrials" must be an integer from 1/],
  [
    'successThreshold over trials',
    { halfOpenMaxTrials: 2, successThreshold: 3 },
    RangeError,
    /"successThreshold" must be an integer from 1 to halfOpenMaxTrials \(2\)/,
  ],
  ['isFailure not a function', { isFailure: 500 }, TypeError, /"isFailure" must be a function, got 500/],
  ['fallback not a function', { fallback: 'stale' }, TypeError, /"fallback" must be a function/],
  ['key not a function', { key: 'route' }, TypeError, /"key" must be a function/],
  ['exempt not an array', { exempt: '/health' }, TypeError, /"exempt" must be an array of paths starting with '\/'/],
  ['exempt relative path', { exempt: ['health'] }, TypeError, /"exempt" must be an array of paths/],
  ['maxRoutes zero', { maxRoutes: 0 }, RangeError, /"maxRoutes" must be an integer from 1 to 10000/],
  ['routes not an object', { routes: ['/x'] }, TypeError, /"routes" must be an object of route pattern/],
  ['route with unknown key', { routes: { '/x': { ttl: 5 } } }, TypeError, /unknown option "ttl"/],
  [
    'route with bad value',
    { routes: { '/x': { timeout: 'never' } } },
    TypeError,
    /option "routes\["\/x"\]\.timeout" must be milliseconds/,
  ],
  ['overload not an object', { overload: 'on' }, TypeError, /"overload" must be an object or false/],
  ['overload unknown key', { overload: { maxDelay: 5 } }, TypeError, /unknown option "maxDelay"/],
  [
    'overload delay bad',
    { overload: { maxEventLoopDelay: 'slow' } },
    TypeError,
    /"overload.maxEventLoopDelay" must be milliseconds/,
  ],
  ['overload heap bad', { overload: { maxHeapUsedBytes: 'lots' } }, TypeError, /"overload.maxHeapUsedBytes" must be/],
  [
    'overload interval tiny',
    { overload: { sampleInterval: 1 } },
    RangeError,
    /"overload.sampleInterval" must be a duration from 10ms/,
  ],
  [
    'clock without methods',
    { clock: { now: () => 0 } },
    TypeError,
    /"clock" must be an object with now\(\), setTimeout\(\) and clearTimeout\(\)/,
  ],
  ['registry not a registry', { registry: {} }, TypeError, /"registry" must be a prom-client Registry/],
  [
    'logger without methods',
    { logger: console.log },
    TypeError,
    /"logger" must be an object with warn\(\) and error\(\)/,
  ],
];

describe('circuitBreaker(options): bad values', () => {
  it.each(middlewareRows)('%s', (_label, options, ErrorClass, message) => {
    let thrown: unknown;
    try {
      circuitBreaker(options as never);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ErrorClass);
    expect((thrown as Error).message.startsWith(PKG)).toBe(true);
    expect((thrown as Error).message).toMatch(message);
  });

  it('app.use(circuitBreaker) without calling it is caught with advice', () => {
    const req = { method: 'GET', headers: {}, url: '/', socket: {} };
    expect(() => circuitBreaker(req as never)).toThrow(/call it first: app.use\(circuitBreaker\(\)\)/);
  });

  it('valid options, durations as strings, and the route() variant construct', async () => {
    const breaker = circuitBreaker({
      failureThreshold: 0,
      failureRateThreshold: 0.5,
      slowCallDuration: '2s',
      resetTimeout: '1m',
      timeout: '10s',
      maxConcurrent: 10,
      maxQueue: 20,
      overload: { maxEventLoopDelay: '500ms', maxHeapUsedBytes: '1gb', sampleInterval: '2s' },
      routes: { '/x/:id': { timeout: false, maxConcurrent: false } },
      exempt: ['/health', '/metrics', '/dashboard'],
    });
    await breaker.close();
    await breaker.close();
    const route = circuitBreaker.route();
    await route.close();
  });
});

const outboundRows: Row[] = [
  ['unknown key', { retries: 3 }, TypeError, /unknown option "retries" for createBreaker/],
  ['name empty', { name: '' }, TypeError, /"name" must be a non-empty string/],
  ['name number', { name: 5 }, TypeError, /"name" must be a string/],
  ['timeout bad', { timeout: 'x' }, TypeError, /"timeout" must be milliseconds/],
  ['retry not an object', { retry: 3 }, TypeError, /"retry" must be an object like \{ maxAttempts: 3 \} or false/],
  ['retry unknown key', { retry: { attempts: 3 } }, TypeError, /unknown option "attempts"/],
  [
    'retry maxAttempts zero',
    { retry: { maxAttempts: 0 } },
    RangeError,
    /"retry.maxAttempts" must be an integer from 1 to 100/,
  ],
  [
    'retry maxDelay under initialDelay',
    { retry: { initialDelay: 500, maxDelay: 100 } },
    RangeError,
    /"retry.maxDelay" must be at least "retry.initialDelay"/,
  ],
  ['retry retryable not a function', { retry: { retryable: true } }, TypeError, /"retry.retryable" must be a function/],
  ['random not a function', { random: 4 }, TypeError, /"random" must be a function/],
  ['maxQueue without maxConcurrent', { maxQueue: 1 }, RangeError, /"maxQueue" needs "maxConcurrent"/],
];

describe('createBreaker(options): bad values', () => {
  it.each(outboundRows)('%s', (_label, options, ErrorClass, message) => {
    let thrown: unknown;
    try {
      createBreaker(options as never);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ErrorClass);
    expect((thrown as Error).message.startsWith(PKG)).toBe(true);
    expect((thrown as Error).message).toMatch(message);
  });

  it('options as the second argument need a function first', () => {
    expect(() => createBreaker('fetch' as never, {})).toThrow(/option "fn" must be a function/);
  });
});
