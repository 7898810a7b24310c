/**
 * `stack.client()` in the preset: an Express route calls a downstream origin through the
 * stack's client; the call carries the inbound request's X-Request-Id and traceparent, its
 * metrics are on the stack's `/metrics`, its origins in `/health`, and `stack.close()`
 * closes it.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import express from 'express';
import { createClient, type PerformanceStack, performanceStack } from 'perfstack';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../helpers/http.js';

const quiet = { warn() {}, error() {} };
const silentLog = { destination: { write() {} } as never };
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

let servers: TestServer[] = [];
let stack: PerformanceStack | undefined;
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  await stack?.close();
  stack = undefined;
});

describe('stack.client()', () => {
  it('propagates the trace context, reports metrics and health on the stack, and closes with it', async () => {
    const seen: IncomingHttpHeaders[] = [];
    const downstream = await listen(
      createServer((req, res) => {
        seen.push(req.headers);
        res.setHeader('content-type', 'application/json');
        res.end('{"price":42}');
      }) as Server,
    );
    servers.push(downstream);
    stack = performanceStack({ env: false, log: quiet, logger: silentLog });
    const prices = stack.client('prices', { origins: [downstream.url], retry: { maxAttempts: 2 } });
    const app = express();
    app.use(stack);
    app.get('/metrics', stack.metrics());
    app.get('/health', stack.health());
    app.get('/quote', async (req, res) => {
      const down = await prices.request({ path: '/price', inbound: req });
      res.json({ status: down.statusCode, body: await down.body.json() });
    });
    const server = await listen(app);
    servers.push(server);

    const quote = await request(`${server.url}/quote`, { headers: { traceparent: TRACEPARENT } });
    expect(quote.status).toBe(200);
    expect(quote.json()).toEqual({ status: 200, body: { price: 42 } });
    const id = quote.headers['x-request-id'];
    expect(typeof id).toBe('string');
    expect(seen).toHaveLength(1);
    expect(seen[0]?.['x-request-id']).toBe(id);
    expect(seen[0]?.traceparent).toBe(TRACEPARENT);

    const metrics = await request(`${server.url}/metrics`);
    expect(metrics.text).toContain('perfstack_client_calls_total{client="prices"} 1');
    expect(metrics.text).toContain(
      `perfstack_client_requests_total{client="prices",origin="${downstream.url}",status="200"} 1`,
    );

    const health = (await request(`${server.url}/health`)).json<{ checks: Record<string, unknown> }>();
    expect(health.checks.clients).toEqual({
      status: 'ok',
      detail: '1 outbound client(s)',
      clients: { prices: { status: 'ok', detail: '1/1 origins available', out: [], retryRate: 0 } },
    });

    await stack.close();
    await expect(prices.request({ path: '/price' })).rejects.toThrow('client "prices" is closed');
    expect(typeof createClient).toBe('function');
  });
});
