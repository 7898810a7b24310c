import http from 'node:http';
import { createRegistry } from '@perfstack/core';
import { dashboard, healthHandler, metricsHandler } from '@perfstack/dashboard';
import { describe, expect, it } from 'vitest';

const P = '@perfstack/dashboard';

describe('dashboard() options', () => {
  it.each<[string, unknown, ErrorConstructor, string]>([
    ['not an object', 'yes', TypeError, `${P}: dashboard(options) takes an options object, got "yes"`],
    ['an unknown key', { auht: {} }, TypeError, `${P}: unknown option "auht" for dashboard()`],
    [
      'a request (app.use(dashboard))',
      new http.IncomingMessage(null as never),
      TypeError,
      'call it first: app.use(dashboard())',
    ],
    [
      'an unknown source',
      { sources: { timming: {} } },
      TypeError,
      'unknown option "timming" for dashboard({ sources })',
    ],
    [
      'a source without its methods',
      { sources: { cache: { stats() {} } } },
      TypeError,
      'option "sources.cache" must be an object with stats() and invalidate(), got object',
    ],
    [
      'a timing source that is a function',
      { sources: { timing: () => ({}) } },
      TypeError,
      'option "sources.timing" must be an object with snapshot()',
    ],
    [
      'health that is an object',
      { sources: { health: { status: 'ok' } } },
      TypeError,
      'option "sources.health" must be a function',
    ],
    ['auth: a string', { auth: 'secret' }, TypeError, 'option "auth" must be { username, password }'],
    ['auth: only a username', { auth: { username: 'a' } }, TypeError, 'option "auth" must be'],
    [
      'auth: an empty password',
      { auth: { username: 'a', password: '' } },
      TypeError,
      'option "auth.password" must be a non-empty string',
    ],
    [
      'auth: a username with a colon',
      { auth: { username: 'a:b', password: 'p' } },
      TypeError,
      'option "auth.username" must be a non-empty string without ":"',
    ],
    [
      'auth: an empty token',
      { auth: { token: '' } },
      TypeError,
      'option "auth.token" must be a non-empty string of visible ASCII',
    ],
    ['auth: a token with a space', { auth: { token: 'a b' } }, TypeError, 'option "auth.token"'],
    [
      'auth: token and username',
      { auth: { token: 't', username: 'u', password: 'p' } },
      TypeError,
      'option "auth" must be',
    ],
    [
      'basePath without a slash',
      { basePath: 'dashboard' },
      RangeError,
      `option "basePath" must be a path starting with '/'`,
    ],
    ['basePath with a query', { basePath: '/d?x' }, RangeError, 'option "basePath"'],
    ['basePath with ..', { basePath: '/a/../d' }, RangeError, 'option "basePath"'],
    ['basePath "/"', { basePath: '/' }, RangeError, 'option "basePath"'],
    ['basePath a number', { basePath: 1 }, TypeError, 'option "basePath"'],
    ['redis a URL', { redis: 'redis://x' }, TypeError, 'option "redis" must be a SharedRedis'],
    ['instanceId empty', { instanceId: '' }, TypeError, 'option "instanceId" must be a string of 1 to 100'],
    ['instanceId with markup', { instanceId: '<b>' }, TypeError, 'option "instanceId"'],
    ['streamInterval too short', { streamInterval: 10 }, RangeError, 'option "streamInterval"'],
    ['streamInterval nonsense', { streamInterval: 'soon' }, TypeError, 'option "streamInterval"'],
    ['heartbeatInterval too short', { heartbeatInterval: '10ms' }, RangeError, 'option "heartbeatInterval"'],
    ['maxStreams 0', { maxStreams: 0 }, RangeError, 'option "maxStreams" must be an integer from 1 to 1000, got 0'],
    ['maxStreams 1.5', { maxStreams: 1.5 }, TypeError, 'option "maxStreams"'],
    [
      'fleetTimeout shorter than fleetInterval',
      { fleetInterval: '5s', fleetTimeout: '2s' },
      RangeError,
      'option "fleetTimeout" must be longer than fleetInterval (5000 ms), got "2s"',
    ],
    ['bodyLimit too large', { bodyLimit: '10mb' }, RangeError, 'option "bodyLimit"'],
    ['bodyLimit nonsense', { bodyLimit: 'big' }, TypeError, 'option "bodyLimit"'],
    ['title empty', { title: '' }, TypeError, 'option "title"'],
    ['registry not a registry', { registry: {} }, TypeError, 'option "registry" must be a prom-client Registry'],
    [
      'logger without error()',
      { logger: { warn() {} } },
      TypeError,
      'option "logger" must be an object with warn() and error()',
    ],
    ['profiling a string', { profiling: 'on' }, TypeError, 'dashboard({ profiling })(options) takes an options object'],
    [
      'profiling unknown key',
      { profiling: { seconds: 5 } },
      TypeError,
      'unknown option "seconds" for dashboard({ profiling })',
    ],
    [
      'profiling.maxSeconds 0',
      { profiling: { maxSeconds: 0 } },
      RangeError,
      'option "profiling.maxSeconds" must be an integer from 1 to 300, got 0',
    ],
    ['profiling.maxSeconds 1.5', { profiling: { maxSeconds: 1.5 } }, TypeError, 'option "profiling.maxSeconds"'],
    [
      'profiling.defaultSeconds over maxSeconds',
      { profiling: { maxSeconds: 5, defaultSeconds: 10 } },
      RangeError,
      'option "profiling.defaultSeconds" must be an integer from 1 to 5, got 10',
    ],
    [
      'profiling.samplingIntervalUs 10',
      { profiling: { samplingIntervalUs: 10 } },
      RangeError,
      'option "profiling.samplingIntervalUs" must be an integer from 50 to 100000',
    ],
    [
      'profiling.heapSamplingInterval nonsense',
      { profiling: { heapSamplingInterval: 'lots' } },
      TypeError,
      'option "profiling.heapSamplingInterval"',
    ],
    [
      'profiling.maxHeapShare 1.5',
      { profiling: { maxHeapShare: 1.5 } },
      RangeError,
      'option "profiling.maxHeapShare" must be a number from 0.05 to 1, got 1.5',
    ],
    [
      'profiling.snapshotCostFactor NaN',
      { profiling: { snapshotCostFactor: Number.NaN } },
      TypeError,
      'option "profiling.snapshotCostFactor"',
    ],
    ['report false', { report: false }, TypeError, 'dashboard({ report })(options) takes an options object'],
    [
      'report unknown key',
      { report: { latencyTarget: 200 } },
      TypeError,
      'unknown option "latencyTarget" for dashboard({ report })',
    ],
    [
      'report.latencyTargetMs 0',
      { report: { latencyTargetMs: 0 } },
      RangeError,
      'option "report.latencyTargetMs" must be a number from 1 to 600000, got 0',
    ],
    [
      'report.latencyTargetMs "200ms"',
      { report: { latencyTargetMs: '200ms' } },
      TypeError,
      'option "report.latencyTargetMs"',
    ],
    ['report.cacheHitTarget 2', { report: { cacheHitTarget: 2 } }, RangeError, 'option "report.cacheHitTarget"'],
    ['report.errorRateTarget 0', { report: { errorRateTarget: 0 } }, RangeError, 'option "report.errorRateTarget"'],
    [
      'report.heapShareTarget 0.99',
      { report: { heapShareTarget: 0.99 } },
      RangeError,
      'option "report.heapShareTarget"',
    ],
    ['report.minRequests 0', { report: { minRequests: 0 } }, RangeError, 'option "report.minRequests"'],
    ['leakWatch a number', { leakWatch: 10 }, TypeError, 'dashboard({ leakWatch })(options) takes an options object'],
    [
      'leakWatch unknown key',
      { leakWatch: { every: '1s' } },
      TypeError,
      'unknown option "every" for dashboard({ leakWatch })',
    ],
    ['leakWatch.interval 10ms', { leakWatch: { interval: 10 } }, RangeError, 'option "leakWatch.interval"'],
    ['leakWatch.interval nonsense', { leakWatch: { interval: 'often' } }, TypeError, 'option "leakWatch.interval"'],
    [
      'leakWatch.window 2',
      { leakWatch: { window: 2 } },
      RangeError,
      'option "leakWatch.window" must be an integer from 3 to 10000, got 2',
    ],
    [
      'leakWatch.minSamples over window',
      { leakWatch: { window: 5, minSamples: 6 } },
      RangeError,
      'option "leakWatch.minSamples" must be an integer from 3 to 5, got 6',
    ],
    [
      'leakWatch.minR2 1.1',
      { leakWatch: { minR2: 1.1 } },
      RangeError,
      'option "leakWatch.minR2" must be a number from 0 to 1, got 1.1',
    ],
    [
      'leakWatch.minHeapGrowth nonsense',
      { leakWatch: { minHeapGrowth: 'some' } },
      TypeError,
      'option "leakWatch.minHeapGrowth"',
    ],
    [
      'leakWatch.minResourceGrowth -1',
      { leakWatch: { minResourceGrowth: -1 } },
      RangeError,
      'option "leakWatch.minResourceGrowth"',
    ],
    [
      'leakWatch.sample not a function',
      { leakWatch: { sample: {} } },
      TypeError,
      'option "leakWatch.sample" must be a function',
    ],
  ])('refuses %s', (_name, options, type, message) => {
    expect(() => dashboard(options as never)).toThrow(type);
    expect(() => dashboard(options as never)).toThrow(message);
  });

  it('does not mutate the options and accepts every valid form', async () => {
    const options = Object.freeze({
      auth: Object.freeze({ token: 'abc' }),
      basePath: '/ops/dash/',
      instanceId: 'web-1:9000',
      streamInterval: '500ms',
      heartbeatInterval: '30s',
      maxStreams: 3,
      fleetInterval: 1000,
      fleetTimeout: '5s',
      bodyLimit: '4kb',
      title: 'shop',
      registry: createRegistry(),
      logger: { warn() {}, error() {} },
      sources: Object.freeze({}),
      profiling: Object.freeze({
        defaultSeconds: 5,
        maxSeconds: 30,
        samplingIntervalUs: 500,
        heapSamplingInterval: '64kb',
        maxHeapShare: 0.8,
        snapshotCostFactor: 1.5,
      }),
      report: Object.freeze({
        latencyTargetMs: 300,
        errorRateTarget: 0.02,
        cacheHitTarget: 0.9,
        blockedShareTarget: 0.05,
        eventLoopDelayTargetMs: 100,
        heapShareTarget: 0.6,
        minRequests: 10,
      }),
      leakWatch: Object.freeze({
        interval: '30s',
        window: 20,
        minSamples: 5,
        minR2: 0.9,
        minGrowth: 0.5,
        minHeapGrowth: '32mb',
        minResourceGrowth: 50,
        minEluGrowth: 0.3,
        sample: () => ({ heapUsedBytes: 1, activeResources: 1, eventLoopUtilization: 0 }),
      }),
    });
    const board = dashboard(options);
    expect(board.leakWatch?.report()).toMatchObject({
      intervalMs: 30_000,
      window: 20,
      thresholds: {
        minSamples: 5,
        minR2: 0.9,
        minGrowth: 0.5,
        minHeapGrowth: 32 * 1024 * 1024,
        minResourceGrowth: 50,
        minEluGrowth: 0.3,
      },
    });
    expect(typeof board).toBe('function');
    expect(board.snapshot().instanceId).toBe('web-1:9000');
    await board.close();
    await board.close();
  });

  it('works with no options at all', async () => {
    const board = dashboard();
    expect(board.snapshot().instanceId).toMatch(/^.+:\d+:[0-9a-f]{4}$/);
    expect(board.leakWatch?.report()).toMatchObject({ intervalMs: 10_000, window: 30 });
    await board.close();
  });

  it('profiling: true and leakWatch: true mean the defaults; false turns them off', async () => {
    const on = dashboard({ profiling: true, leakWatch: true });
    expect(on.leakWatch).toBeDefined();
    await on.close();
    const off = dashboard({ profiling: false, leakWatch: false });
    expect(off.leakWatch).toBeUndefined();
    await off.close();
  });
});

describe('metricsHandler() and healthHandler() options', () => {
  it.each<[string, () => unknown, string]>([
    [
      'metrics without a registry',
      () => metricsHandler({} as never),
      'option "registry" must be a prom-client Registry',
    ],
    [
      'metrics with an unknown key',
      () => metricsHandler({ registry: createRegistry(), open: true } as never),
      'unknown option "open"',
    ],
    [
      'metrics with public: "yes"',
      () => metricsHandler({ registry: createRegistry(), public: 'yes' } as never),
      'option "public" must be a boolean',
    ],
    [
      'health with a bad check',
      () => healthHandler({ checks: { redis: 'up' } } as never),
      'option "checks.redis" must be an object with health() or a function',
    ],
    ['health with bad auth', () => healthHandler({ auth: { user: 'x' } } as never), 'option "auth" must be'],
    [
      'health checks as an array',
      () => healthHandler({ checks: [] } as never),
      'option "checks" must be an object of named checks',
    ],
  ])('refuses %s', (_name, make, message) => {
    expect(make).toThrow(TypeError);
    expect(make).toThrow(message);
  });
});
