import http from 'node:http';
import { createRegistry, silentLogger } from '@perfstack/core';
import { type TimingOptions, timing } from '@perfstack/timing';
import { describe, expect, it } from 'vitest';

const PKG = '@perfstack/timing';

/** [description, options, error class, exact message] */
const badOptions: ReadonlyArray<readonly [string, unknown, ErrorConstructor, string]> = [
  ['a string instead of options', 'fast', TypeError, `${PKG}: timing(options) takes an options object, got "fast"`],
  ['an array instead of options', [], TypeError, `${PKG}: timing(options) takes an options object, got array(0)`],
  [
    'an unknown key',
    { serverTimings: true },
    TypeError,
    `${PKG}: unknown option "serverTimings" for timing(); known options: serverTiming, responseTimeHeader, metrics, defaultMetrics, prefix, buckets, maxRoutes, alerts, sampleInterval, exclude, clock, sampleProcess, registry, redis, logger`,
  ],
  [
    'serverTiming not a boolean',
    { serverTiming: 'yes' },
    TypeError,
    `${PKG}: option "serverTiming" must be a boolean, got "yes"`,
  ],
  [
    'responseTimeHeader not a header name',
    { responseTimeHeader: 'X Bad' },
    TypeError,
    `${PKG}: option "responseTimeHeader" must be a boolean or a header name, got "X Bad"`,
  ],
  ['metrics not a boolean', { metrics: 1 }, TypeError, `${PKG}: option "metrics" must be a boolean, got 1`],
  [
    'defaultMetrics not a boolean',
    { defaultMetrics: null },
    TypeError,
    `${PKG}: option "defaultMetrics" must be a boolean, got null`,
  ],
  [
    'prefix not a metric name',
    { prefix: '1bad-' },
    TypeError,
    `${PKG}: option "prefix" must be a Prometheus name prefix such as "myapp_" ([a-zA-Z_:][a-zA-Z0-9_:]*), got "1bad-"`,
  ],
  [
    'buckets empty',
    { buckets: [] },
    TypeError,
    `${PKG}: option "buckets" must be a non-empty array of ascending positive numbers (seconds), got array(0)`,
  ],
  [
    'buckets not ascending',
    { buckets: [0.1, 0.05] },
    RangeError,
    `${PKG}: option "buckets" must be a non-empty array of ascending positive numbers (seconds), got array(2)`,
  ],
  [
    'buckets with a non-number',
    { buckets: [0.1, '1'] },
    TypeError,
    `${PKG}: option "buckets" must be a non-empty array of ascending positive numbers (seconds), got array(2)`,
  ],
  [
    'maxRoutes zero',
    { maxRoutes: 0 },
    RangeError,
    `${PKG}: option "maxRoutes" must be an integer from 1 to 10000, got 0`,
  ],
  [
    'maxRoutes fractional',
    { maxRoutes: 1.5 },
    TypeError,
    `${PKG}: option "maxRoutes" must be an integer from 1 to 10000, got 1.5`,
  ],
  [
    'maxRoutes too large',
    { maxRoutes: 20_000 },
    RangeError,
    `${PKG}: option "maxRoutes" must be an integer from 1 to 10000, got 20000`,
  ],
  [
    'sampleInterval too short',
    { sampleInterval: 10 },
    RangeError,
    `${PKG}: option "sampleInterval" must be a duration from 100ms to 3600000ms, got 10`,
  ],
  [
    'sampleInterval not a duration',
    { sampleInterval: 'often' },
    TypeError,
    `${PKG}: option "sampleInterval" must be milliseconds as a number, or a string like '250ms', '30s', '5m', '1h', '1d', got "often"`,
  ],
  [
    'exclude not an array',
    { exclude: '/metrics' },
    TypeError,
    `${PKG}: option "exclude" must be an array of path prefixes starting with "/", got "/metrics"`,
  ],
  [
    'exclude with a relative path',
    { exclude: ['metrics'] },
    TypeError,
    `${PKG}: option "exclude" must be an array of path prefixes starting with "/", got array(1)`,
  ],
  [
    'clock without now()',
    { clock: Date },
    TypeError,
    `${PKG}: option "clock" must be an object with a now() method returning milliseconds, got function Date`,
  ],
  [
    'sampleProcess not a function',
    { sampleProcess: {} },
    TypeError,
    `${PKG}: option "sampleProcess" must be a function, got object`,
  ],
  [
    'registry not a Registry',
    { registry: {} },
    TypeError,
    `${PKG}: option "registry" must be a prom-client Registry, got object`,
  ],
  [
    'logger without error()',
    { logger: { warn() {} } },
    TypeError,
    `${PKG}: option "logger" must be an object with warn() and error() methods, got object`,
  ],
  [
    'alerts true-ish string',
    { alerts: 'on' },
    TypeError,
    `${PKG}: option "alerts" must be a boolean or an object with cpu, memory, cacheHitRate, errorRate, latency, rules, got "on"`,
  ],
  [
    'alerts with an unknown rule key',
    { alerts: { disk: {} } },
    TypeError,
    `${PKG}: unknown key "disk" in option "alerts"; known keys: cpu, memory, cacheHitRate, errorRate, latency, rules`,
  ],
  [
    'alerts.cpu.threshold negative',
    { alerts: { cpu: { threshold: -1 } } },
    RangeError,
    `${PKG}: option "alerts.cpu.threshold" must be a number from 0 to 10000, got -1`,
  ],
  [
    'alerts.memory.threshold as a percent',
    { alerts: { memory: { threshold: 85 } } },
    RangeError,
    `${PKG}: option "alerts.memory.threshold" must be a fraction from 0 to 1 (0.85 means 85%), got 85`,
  ],
  [
    'alerts.memory.limitBytes not a size',
    { alerts: { memory: { limitBytes: 'lots' } } },
    TypeError,
    `${PKG}: option "alerts.memory.limitBytes" must be bytes as a number, or a string like '512b', '100kb', '1mb', '2gb', got "lots"`,
  ],
  [
    'alerts.errorRate.for not a duration',
    { alerts: { errorRate: { for: '1 minute' } } },
    TypeError,
    `${PKG}: option "alerts.errorRate.for" must be milliseconds as a number, or a string like '250ms', '30s', '5m', '1h', '1d', got "1 minute"`,
  ],
  [
    'alerts.cacheHitRate.minLookups zero',
    { alerts: { cacheHitRate: { minLookups: 0 } } },
    RangeError,
    `${PKG}: option "alerts.cacheHitRate.minLookups" must be an integer from 1 to 1000000, got 0`,
  ],
  [
    'alerts.latency.threshold not a duration',
    { alerts: { latency: { threshold: 'slow' } } },
    TypeError,
    `${PKG}: option "alerts.latency.threshold" must be milliseconds as a number, or a string like '250ms', '30s', '5m', '1h', '1d', got "slow"`,
  ],
  [
    'alerts.latency.severity unknown',
    { alerts: { latency: { severity: 'page' } } },
    TypeError,
    `${PKG}: option "alerts.latency.severity" must be "warning" or "critical", got "page"`,
  ],
  [
    'alerts.cpu with an unknown key',
    { alerts: { cpu: { limit: 90 } } },
    TypeError,
    `${PKG}: unknown key "limit" in option "alerts.cpu"; known keys: threshold, for, severity`,
  ],
  [
    'alerts.rules not an array',
    { alerts: { rules: {} } },
    TypeError,
    `${PKG}: option "alerts.rules" must be an array of rules, got object`,
  ],
  [
    'a custom rule without a value function',
    { alerts: { rules: [{ name: 'x', threshold: 1, recommendation: 'r' }] } },
    TypeError,
    `${PKG}: option "alerts.rules[0].value" must be a function of the snapshot, got undefined`,
  ],
  [
    'a custom rule named like a default one',
    { alerts: { rules: [{ name: 'cpu', threshold: 1, value: () => 1, recommendation: 'r' }] } },
    RangeError,
    `${PKG}: option "alerts.rules[0].name" must be a name no other rule uses, got "cpu"`,
  ],
  [
    'a custom rule with a bad name',
    { alerts: { rules: [{ name: '', threshold: 1, value: () => 1, recommendation: 'r' }] } },
    TypeError,
    `${PKG}: option "alerts.rules[0].name" must be a name of letters, digits, "_", "-" or "." starting with a letter, got ""`,
  ],
  [
    'a custom rule with a NaN threshold',
    { alerts: { rules: [{ name: 'x', threshold: Number.NaN, value: () => 1, recommendation: 'r' }] } },
    TypeError,
    `${PKG}: option "alerts.rules[0].threshold" must be a finite number, got NaN`,
  ],
  [
    'a custom rule with a bad comparison',
    { alerts: { rules: [{ name: 'x', threshold: 1, when: '>', value: () => 1, recommendation: 'r' }] } },
    TypeError,
    `${PKG}: option "alerts.rules[0].when" must be "above" or "below", got ">"`,
  ],
  [
    'a custom rule without a recommendation',
    { alerts: { rules: [{ name: 'x', threshold: 1, value: () => 1 }] } },
    TypeError,
    `${PKG}: option "alerts.rules[0].recommendation" must be a string, { recommendation } or a function, got undefined`,
  ],
];

describe('timing() options', () => {
  it.each(badOptions)('rejects %s', (_name, options, ErrorClass, message) => {
    let thrown: unknown;
    try {
      timing(options as TimingOptions);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ErrorClass);
    expect((thrown as Error).message).toBe(message);
  });

  it('says to call the factory when given a request (app.use(timing) without the call)', () => {
    const req = new http.IncomingMessage(null as never);
    expect(() => timing(req as never)).toThrow(
      new TypeError(`${PKG}: timing was passed a request object; call it first: app.use(timing()) not app.use(timing)`),
    );
  });

  it('accepts every documented option at once, and the SharedContext members', async () => {
    const t = timing({
      serverTiming: false,
      responseTimeHeader: 'X-Took',
      metrics: true,
      defaultMetrics: false,
      prefix: 'app_',
      buckets: [0.01, 0.1, 1],
      maxRoutes: 10,
      alerts: {
        cpu: { threshold: 90, for: '1m', severity: 'critical' },
        memory: { threshold: 0.9, for: 60_000, limitBytes: '1gb' },
        cacheHitRate: false,
        errorRate: { threshold: 0.1, minRequests: 50 },
        latency: { threshold: '1s', for: '10m', minRequests: 5 },
        rules: [],
      },
      sampleInterval: '5s',
      exclude: ['/metrics', '/health'],
      clock: { now: () => 0 },
      sampleProcess: () => ({
        rssBytes: 0,
        heapUsedBytes: 0,
        heapTotalBytes: 0,
        heapLimitBytes: 0,
        eventLoopDelayMs: { p50: 0, p99: 0, max: 0 },
        cpuPercent: 0,
        uptimeSeconds: 0,
      }),
      registry: createRegistry(),
      redis: undefined,
      logger: silentLogger,
    });
    expect(typeof t).toBe('function');
    expect(t.length).toBe(3);
    await t.close();
    const bare = timing();
    expect(bare.registry).toBeDefined();
    await bare.close();
  });
});
