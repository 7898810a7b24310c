import { counter, createRegistry, setRoute, UNMATCHED_ROUTE, withMiddleware } from '@perfstack/core';
import { OTHER_ROUTE, type Timing } from '@perfstack/timing';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';
import { blast, closeAll, quietTiming } from './support.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
  await closeAll();
});

async function serveUsers(t: Timing): Promise<TestServer> {
  const app = express();
  app.use(t);
  app.get('/users/:id', (req, res) => {
    res.json({ id: req.params.id });
  });
  app.post('/users', express.text(), (req, res) => {
    res.status(201).send(String(req.body).toUpperCase());
  });
  app.get('/boom', () => {
    throw new Error('boom');
  });
  return listen(app);
}

/** The lines of a metric family in Prometheus text. */
function lines(text: string, name: string): string[] {
  return text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

describe('Prometheus metrics', () => {
  it('labels /users/1 and /users/2 with one route pattern, never the raw URL', async () => {
    const t = quietTiming();
    server = await serveUsers(t);
    expect((await request(`${server.url}/users/1`)).status).toBe(200);
    expect((await request(`${server.url}/users/2`)).status).toBe(200);
    const text = await t.registry.metrics();
    expect(text).toContain(
      'http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/users/:id",status_code="200"} 2',
    );
    expect(lines(text, 'http_request_duration_seconds_count')).toEqual([
      'http_request_duration_seconds_count{method="GET",route="/users/:id",status_code="200"} 2',
    ]);
    expect(lines(text, 'http_requests_total')).toEqual([
      'http_requests_total{method="GET",route="/users/:id",status_code="200"} 2',
    ]);
    expect(text).not.toContain('/users/1');
    expect(text).not.toContain('/users/2');
  });

  it('files unmatched requests (any URL) under one label, and 5xx under their status', async () => {
    const t = quietTiming();
    server = await serveUsers(t);
    for (const path of ['/nope', '/a/b/c', '/users', '/favicon.ico?x=1']) {
      expect((await request(`${server.url}${path}`)).status).toBe(404);
    }
    expect((await request(`${server.url}/boom`)).status).toBe(500);
    const text = await t.registry.metrics();
    expect(lines(text, 'http_requests_total')).toEqual([
      `http_requests_total{method="GET",route="${UNMATCHED_ROUTE}",status_code="404"} 4`,
      'http_requests_total{method="GET",route="/boom",status_code="500"} 1',
    ]);
  });

  it('records request and response sizes from Content-Length, and the in-flight gauge', async () => {
    const t = quietTiming();
    server = await serveUsers(t);
    const res = await request(`${server.url}/users`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'hello world',
    });
    expect(res.status).toBe(201);
    expect(res.text).toBe('HELLO WORLD');
    const text = await t.registry.metrics();
    expect(text).toContain('http_request_size_bytes_sum{method="POST",route="/users",status_code="201"} 11');
    expect(text).toContain('http_response_size_bytes_sum{method="POST",route="/users",status_code="201"} 11');
    // A GET has no body and no Content-Length: no request-size observation.
    await request(`${server.url}/users/7`);
    const after = await t.registry.metrics();
    expect(after).not.toContain('http_request_size_bytes_count{method="GET"');
    expect(after).toContain('http_response_size_bytes_sum{method="GET",route="/users/:id",status_code="200"} 10');
    expect(lines(after, 'http_requests_in_flight')).toEqual(['http_requests_in_flight 0']);
  });

  it('counts a request in flight until its response ends', async () => {
    const t = quietTiming();
    let release: () => void = () => {};
    const app = express();
    app.use(t);
    app.get('/wait', (_req, res) => {
      release = () => res.send('released');
    });
    server = await listen(app);
    const pending = request(`${server.url}/wait`);
    await waitFor(() => t.snapshot().inFlight === 1);
    expect(lines(await t.registry.metrics(), 'http_requests_in_flight')).toEqual(['http_requests_in_flight 1']);
    release();
    expect((await pending).text).toBe('released');
    await waitFor(() => t.snapshot().inFlight === 0);
    expect(lines(await t.registry.metrics(), 'http_requests_in_flight')).toEqual(['http_requests_in_flight 0']);
    expect(t.snapshot().inFlight).toBe(0);
  });

  it('holds the cap with 10,000 distinct route patterns: maxRoutes labels, the rest share "other"', async () => {
    const t = quietTiming({ maxRoutes: 50 });
    server = await listen(
      withMiddleware(t, (req, res) => {
        // A plain node:http app that names its own routes: here every request a new pattern.
        setRoute(req, `/generated/${req.url?.slice(1)}/:id`);
        res.end('ok');
      }),
    );
    const paths = Array.from({ length: 10_000 }, (_, i) => `/${i}`);
    expect(await blast(server.url, paths)).toEqual({ 200: 10_000 });
    const text = await t.registry.metrics();
    const series = lines(text, 'http_requests_total');
    expect(series).toHaveLength(51);
    expect(series.filter((line) => line.includes(`route="${OTHER_ROUTE}"`))).toEqual([
      `http_requests_total{method="GET",route="${OTHER_ROUTE}",status_code="200"} 9950`,
    ]);
    const routes = new Set(
      lines(text, 'http_request_duration_seconds_count').map((l) => /route="([^"]*)"/.exec(l)?.[1]),
    );
    expect(routes.size).toBe(51);
    // The per-route table is bounded by the same cap (plus one shared overflow row).
    expect(t.snapshot().routes.length).toBeLessThanOrEqual(51);
  });

  it('uses the prefix for every metric name and can leave default metrics out', async () => {
    const t = quietTiming({ prefix: 'shop_', defaultMetrics: false });
    server = await serveUsers(t);
    await request(`${server.url}/users/1`);
    const text = await t.registry.metrics();
    expect(text).toContain('shop_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/users/:id"');
    expect(text).toContain('# TYPE shop_http_requests_total counter');
    expect(text).toContain('# TYPE shop_http_requests_in_flight gauge');
    expect(text).not.toContain('process_cpu_user_seconds_total');
  });

  it('registers default process metrics and event-loop lag once per registry, shared by two timings', async () => {
    const registry = createRegistry();
    const a = quietTiming({ registry, defaultMetrics: true });
    const b = quietTiming({ registry, defaultMetrics: true });
    expect(a.registry).toBe(registry);
    expect(b.registry).toBe(registry);
    const text = await registry.metrics();
    expect(text.match(/^# TYPE process_cpu_user_seconds_total counter$/gm)).toHaveLength(1);
    expect(text).toContain('# TYPE nodejs_eventloop_lag_p99_seconds gauge');
    expect(text.match(/^# TYPE http_request_duration_seconds histogram$/gm)).toHaveLength(1);
  });

  it('records nothing in Prometheus with metrics: false, but still times and windows requests', async () => {
    const t = quietTiming({ metrics: false });
    server = await serveUsers(t);
    const res = await request(`${server.url}/users/1`);
    expect(res.headers['server-timing']).toMatch(/^total;dur=/);
    expect(await t.registry.metrics()).toBe('\n');
    expect(t.snapshot().windows['1m'].requests).toBe(1);
  });

  it('refuses a registry whose metric of the same name has other labels', () => {
    const registry = createRegistry();
    counter(registry, { name: 'http_requests_total', help: 'the app own counter', labelNames: ['path'] });
    expect(() => quietTiming({ registry })).toThrow(
      new TypeError(
        '@perfstack/timing: the registry already has a metric "http_requests_total" with labels [path], ' +
          'timing needs [method, route, status_code]; pass another "prefix" or another "registry"',
      ),
    );
  });
});
