import { Counter, createRegistry, Gauge, Histogram, type Registry } from '@perfstack/core';
import { describe, expect, it } from 'vitest';
import { LabelTable } from '../src/labels.js';
import { DEFAULT_DURATION_BUCKETS, HttpMetrics, SIZE_BUCKETS } from '../src/metrics.js';

const LABELS = ['method', 'route', 'status_code'];

/** The same metrics made the plain prom-client way, as a reference. */
function reference(registry: Registry) {
  const registers = [registry];
  return {
    duration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Duration of HTTP requests in seconds, from arrival to the end of the response, by route pattern',
      labelNames: LABELS,
      buckets: [...DEFAULT_DURATION_BUCKETS],
      registers,
    }),
    requests: new Counter({
      name: 'http_requests_total',
      help: 'HTTP requests answered, by route pattern',
      labelNames: LABELS,
      registers,
    }),
    inFlight: new Gauge({ name: 'http_requests_in_flight', help: 'HTTP requests being processed', registers }),
    requestSize: new Histogram({
      name: 'http_request_size_bytes',
      help: 'Size of HTTP request bodies in bytes (from Content-Length), by route pattern',
      labelNames: LABELS,
      buckets: [...SIZE_BUCKETS],
      registers,
    }),
    responseSize: new Histogram({
      name: 'http_response_size_bytes',
      help: 'Size of HTTP response bodies in bytes (from Content-Length), by route pattern',
      labelNames: LABELS,
      buckets: [...SIZE_BUCKETS],
      registers,
    }),
  };
}

// [method, route, status, seconds, request bytes, response bytes]; bounds hit exactly, past the last, zero.
const OBSERVATIONS: ReadonlyArray<readonly [string, string, number, number, number, number]> = [
  ['GET', '/users/:id', 200, 0.005, -1, 100],
  ['GET', '/users/:id', 200, 0.0051, -1, 101],
  ['GET', '/users/:id', 200, 0, -1, 0],
  ['GET', '/users/:id', 404, 10, -1, 10_000_000],
  ['GET', '/users/:id', 404, 12.5, -1, 10_000_001],
  ['POST', '/users', 201, 0.3, 11, -1],
  ['POST', '/users', 201, 0.25, 1_000, 2_000],
  ['GET', 'unmatched', 500, 1e-7, -1, -1],
];

function feed(metrics: HttpMetrics, table: LabelTable): void {
  for (const [method, route, status, seconds, requestBytes, responseBytes] of OBSERVATIONS) {
    metrics.observe(table.kind(method, route, status), seconds, requestBytes, responseBytes);
  }
}

function feedReference(ref: ReturnType<typeof reference>): void {
  for (const [method, route, status, seconds, requestBytes, responseBytes] of OBSERVATIONS) {
    const labels = { method, route, status_code: String(status) };
    ref.duration.observe(labels, seconds);
    ref.requests.inc(labels);
    if (requestBytes >= 0) ref.requestSize.observe(labels, requestBytes);
    if (responseBytes >= 0) ref.responseSize.observe(labels, responseBytes);
  }
}

const sortedLines = (text: string) => text.split('\n').sort();

async function samples(registry: Registry) {
  const out: string[] = [];
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const v of metric.values as Array<{ metricName?: string; labels: object; value: number }>) {
      out.push(JSON.stringify([metric.name, metric.type, v.metricName ?? metric.name, v.labels, v.value]));
    }
  }
  return out.sort();
}

function pair() {
  const ours = createRegistry();
  const theirs = createRegistry();
  const metrics = new HttpMetrics({
    registry: ours,
    prefix: '',
    buckets: DEFAULT_DURATION_BUCKETS,
    defaultMetrics: false,
  });
  return { ours, theirs, metrics, ref: reference(theirs), table: new LabelTable(100) };
}

describe('Prometheus series kept off prom-client', () => {
  it('expose the same text as prom-client metrics fed the same observations', async () => {
    const { ours, theirs, metrics, ref, table } = pair();
    expect(await ours.metrics()).toBe(await theirs.metrics());
    feed(metrics, table);
    feedReference(ref);
    metrics.arrive();
    metrics.arrive();
    metrics.leave();
    ref.inFlight.inc();
    ref.inFlight.inc();
    ref.inFlight.dec();
    const text = await ours.metrics();
    expect(text).toContain(
      'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/users/:id",status_code="200"} 2',
    );
    expect(text).toContain('http_requests_in_flight 1');
    expect(sortedLines(text)).toEqual(sortedLines(await theirs.metrics()));
  });

  it('give the same JSON, default labels included, and do not share label objects with the caller', async () => {
    const { ours, theirs, metrics, ref, table } = pair();
    feed(metrics, table);
    feedReference(ref);
    ours.setDefaultLabels({ app: 'shop' });
    theirs.setDefaultLabels({ app: 'shop' });
    expect(await samples(ours)).toEqual(await samples(theirs));
    expect(sortedLines(await ours.metrics())).toEqual(sortedLines(await theirs.metrics()));
    // getMetricsAsJSON wrote the default label into copies, not into the interned labels.
    expect(table.kind('GET', '/users/:id', 200).labels).toEqual({
      method: 'GET',
      route: '/users/:id',
      status_code: '200',
    });
  });

  it('forget their series on resetMetrics() like prom-client, and count again from there', async () => {
    const { ours, theirs, metrics, ref, table } = pair();
    feed(metrics, table);
    feedReference(ref);
    metrics.arrive();
    ours.resetMetrics();
    theirs.resetMetrics();
    // The in-flight gauge is live: a request still in flight stays counted.
    expect(await ours.metrics()).toContain('http_requests_in_flight 1');
    metrics.leave();
    feed(metrics, table);
    feedReference(ref);
    expect(sortedLines(await ours.metrics())).toEqual(sortedLines(await theirs.metrics()));
  });

  it('are shared by two instances on one registry, and feed a same-named prom-client metric someone else made', async () => {
    const registry = createRegistry();
    const appCounter = new Counter({
      name: 'http_requests_total',
      help: 'the app own counter',
      labelNames: LABELS,
      registers: [registry],
    });
    const config = { registry, prefix: '', buckets: DEFAULT_DURATION_BUCKETS, defaultMetrics: false };
    const a = new HttpMetrics(config);
    const b = new HttpMetrics(config);
    a.observe(new LabelTable(10).kind('GET', '/a', 200), 0.01, -1, -1);
    b.observe(new LabelTable(10).kind('GET', '/a', 200), 0.02, -1, -1);
    a.arrive();
    b.arrive();
    const text = await registry.metrics();
    expect(text).toContain('http_request_duration_seconds_count{method="GET",route="/a",status_code="200"} 2');
    expect(text).toContain('http_request_duration_seconds_sum{method="GET",route="/a",status_code="200"} 0.03');
    expect(text).toContain('http_requests_in_flight 2');
    expect(registry.getSingleMetric('http_requests_total')).toBe(appCounter);
    expect(text).toContain('http_requests_total{method="GET",route="/a",status_code="200"} 2');
  });
});
