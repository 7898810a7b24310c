import { counter, createRegistry, createSharedRedis, gauge, histogram, type SharedRedis } from '@perfstack/core';
import { buildHealthReport, healthHandler, metricsHandler, redisHealthCheck } from '@perfstack/dashboard';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';
import { type RedisServerHandle, startRedisServer } from '../../../test/helpers/redis.js';
import { memoryLogger } from './fakes.js';

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/**
 * A strict reader of the Prometheus text format 0.0.4: every line is a `# HELP`, a `# TYPE`
 * or a sample `name{label="value",...} number`; samples belong to a declared family.
 */
function parsePrometheus(text: string) {
  const families = new Map<string, { type?: string; help?: string }>();
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const sampleRe = new RegExp(
    `^(${NAME})(?:\\{(.*)\\})? (-?(?:[0-9.]+(?:e[+-]?[0-9]+)?|NaN|\\+Inf|-Inf))(?: -?[0-9]+)?$`,
  );
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(?:,|$)/gy;
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    let m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line);
    if (m) {
      families.set(m[1]!, { ...families.get(m[1]!), help: m[2]! });
      continue;
    }
    m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
    if (m) {
      families.set(m[1]!, { ...families.get(m[1]!), type: m[2]! });
      continue;
    }
    m = sampleRe.exec(line);
    if (!m) throw new Error(`not a Prometheus line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      labelRe.lastIndex = 0;
      let consumed = 0;
      for (let l = labelRe.exec(m[2]); l; l = labelRe.exec(m[2])) {
        labels[l[1]!] = l[2]!;
        consumed = labelRe.lastIndex;
      }
      if (consumed !== m[2].length) throw new Error(`bad labels: ${line}`);
    }
    const family = m[1]!.replace(/_(bucket|sum|count)$/, '');
    if (!families.has(m[1]!) && !families.has(family)) throw new Error(`sample without a family: ${line}`);
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return { families, samples };
}

describe('metricsHandler', () => {
  it('serves the registry as Prometheus text with its content type, never cached', async () => {
    const registry = createRegistry();
    const h = histogram(registry, {
      name: 'http_request_duration_seconds',
      help: 'Request duration',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: [0.01, 0.1, 1],
    });
    h.observe({ method: 'GET', route: '/users/:id', status_code: '200' }, 0.05);
    h.observe({ method: 'GET', route: 'unmatched', status_code: '404' }, 0.002);
    counter(registry, {
      name: 'perfstack_cache_hits_total',
      help: 'Cache hits "quoted"\\ok',
      labelNames: ['route'] as const,
    }).inc({
      route: '/a "b"\\c',
    });
    gauge(registry, { name: 'http_requests_in_flight', help: 'In flight' }).set(3);
    const metrics = metricsHandler({ registry });
    server = await listen((req, res) => metrics(req, res));
    const res = await request(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe(registry.contentType);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    const parsed = parsePrometheus(res.text);
    expect(parsed.families.get('http_request_duration_seconds')).toEqual({
      help: 'Request duration',
      type: 'histogram',
    });
    expect(parsed.samples).toContainEqual({
      name: 'http_request_duration_seconds_count',
      labels: { method: 'GET', route: '/users/:id', status_code: '200' },
      value: 1,
    });
    expect(parsed.samples).toContainEqual({
      name: 'http_request_duration_seconds_bucket',
      labels: { le: '+Inf', method: 'GET', route: 'unmatched', status_code: '404' },
      value: 1,
    });
    expect(parsed.samples).toContainEqual({ name: 'http_requests_in_flight', labels: {}, value: 3 });
    expect(parsed.samples).toContainEqual({
      name: 'perfstack_cache_hits_total',
      labels: { route: '/a \\"b\\"\\\\c' },
      value: 1,
    });
  });

  it('HEAD: headers only; POST: 405', async () => {
    const metrics = metricsHandler({ registry: createRegistry() });
    server = await listen((req, res) => metrics(req, res));
    const head = await request(`${server.url}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    const post = await request(`${server.url}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });

  it('a registry that fails → 500 problem, logged once', async () => {
    const registry = createRegistry();
    registry.metrics = () => Promise.reject(new Error('collect failed'));
    const logger = memoryLogger();
    const metrics = metricsHandler({ registry, logger });
    server = await listen((req, res) => metrics(req, res));
    const res = await request(`${server.url}/metrics`);
    expect(res.status).toBe(500);
    expect(res.json<{ code: string }>().code).toBe('INTERNAL_ERROR');
    expect(res.text).not.toContain('collect failed');
    await request(`${server.url}/metrics`);
    expect(logger.lines.map((l) => l.message)).toEqual(['DASHBOARD_HANDLER_FAILED: a dashboard handler failed']);
  });
});

describe('healthHandler', () => {
  const ok = () => ({ status: 'ok' as const });
  const degraded = () => ({ status: 'degraded' as const, detail: 'Redis down' });
  const down = () => ({ status: 'down' as const, detail: 'overloaded' });

  it.each([
    ['no checks', {}, 200, 'ok'],
    ['all ok', { a: ok, b: { health: ok } }, 200, 'ok'],
    ['one degraded', { a: ok, redis: degraded }, 200, 'degraded'],
    ['one down', { redis: degraded, overload: down, a: ok }, 503, 'down'],
  ])('%s → %i %s (worst wins)', async (_name, checks, status, overall) => {
    const health = healthHandler({ checks });
    server = await listen((req, res) => health(req, res));
    const res = await request(`${server.url}/health`);
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json<{ status: string; checks: Record<string, unknown> }>();
    expect(body.status).toBe(overall);
    expect(Object.keys(body.checks)).toEqual(Object.keys(checks));
  });

  it('reports every check with its detail', () => {
    expect(buildHealthReport({ redis: degraded, breakers: ok })).toEqual({
      status: 'degraded',
      checks: { redis: { status: 'degraded', detail: 'Redis down' }, breakers: { status: 'ok' } },
    });
  });

  it('a check that throws or returns garbage is degraded, logged once', async () => {
    const logger = memoryLogger();
    const health = healthHandler({
      logger,
      checks: {
        broken: () => {
          throw new Error('bug');
        },
        weird: () => ({ status: 'fine' }) as never,
      },
    });
    expect(health.report()).toEqual({
      status: 'degraded',
      checks: {
        broken: { status: 'degraded', detail: 'the check failed: bug' },
        weird: { status: 'degraded', detail: 'the check failed: returned {"status":"fine"}' },
      },
    });
    health.report();
    expect(logger.lines.map((l) => l.message)).toEqual([
      'HEALTH_CHECK_FAILED:broken: health check "broken" failed: bug',
      'HEALTH_CHECK_FAILED:weird: health check "weird" failed: returned {"status":"fine"}',
    ]);
  });

  it('HEAD when down: 503, no body', async () => {
    const health = healthHandler({ checks: { overload: down } });
    server = await listen((req, res) => health(req, res));
    const res = await request(`${server.url}/health`, { method: 'HEAD' });
    expect(res.status).toBe(503);
    expect(res.body.length).toBe(0);
  });

  describe('redisHealthCheck with a real Redis', () => {
    let redisServer: RedisServerHandle | undefined;
    let redis: SharedRedis | undefined;
    afterEach(async () => {
      await redis?.close();
      await redisServer?.stop();
    });

    it('ok while connected, degraded (still 200) once Redis stops', async () => {
      redisServer = await startRedisServer();
      redis = createSharedRedis({ url: redisServer.url, logger: memoryLogger() });
      await redis.connect();
      const health = healthHandler({ checks: { redis: redisHealthCheck(redis) } });
      server = await listen((req, res) => health(req, res));
      const up = await request(`${server.url}/health`);
      expect(up.status).toBe(200);
      expect(up.json()).toMatchObject({
        status: 'ok',
        checks: { redis: { status: 'ok', detail: 'connected', redis: 'up' } },
      });
      await redisServer.stop();
      await waitFor(() => redis!.status !== 'up');
      const gone = await request(`${server.url}/health`);
      expect(gone.status).toBe(200);
      expect(gone.json()).toMatchObject({
        status: 'degraded',
        checks: {
          redis: {
            status: 'degraded',
            detail: expect.stringMatching(/^Redis is (down|connecting); serving from memory/),
          },
        },
      });
    });
  });
});
