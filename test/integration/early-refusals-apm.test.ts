/**
 * Early refusals and instrumentation: an APM or OpenTelemetry's HTTP instrumentation wraps
 * the server's `emit` to see every request. The stack must not answer in front of it: the
 * early gate stays inside the stack there, so the wrapped `emit` sees every request, refused
 * ones included, and the answers are the same 429s.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import express from 'express';
import { type PerformanceStack, performanceStack } from 'perfstack';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../helpers/http.js';

let server: TestServer | undefined;
let stack: PerformanceStack | undefined;
afterEach(async () => {
  await server?.close();
  await stack?.close();
  server = undefined;
  stack = undefined;
});

function app(s: PerformanceStack) {
  const a = express();
  a.use(s);
  a.get('/items', (_req, res) => {
    res.json({ ok: true });
  });
  return a;
}

const options = () => ({
  redis: false as const,
  log: { warn() {}, error() {} },
  logger: { destination: { write() {} } },
  rateLimit: { limit: 1, window: '15m' },
});

describe('early refusals behind an instrumented emit', () => {
  it('the wrapped emit sees every request, refused ones too, and stays in place', async () => {
    stack = performanceStack(options());
    const httpServer = http.createServer(app(stack));
    const seen: string[] = [];
    const instrumented = function instrumentedEmit(this: http.Server, type: string | symbol, ...args: unknown[]) {
      if (type === 'request') seen.push((args[0] as http.IncomingMessage).url ?? '');
      return EventEmitter.prototype.emit.call(this, type, ...args);
    } as http.Server['emit'];
    httpServer.emit = instrumented;
    server = await listen(httpServer);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await request(`${server.url}/items?n=${i}`)).status);
    expect(statuses).toEqual([200, 429, 429]);
    expect(seen).toEqual(['/items?n=0', '/items?n=1', '/items?n=2']);
    expect(httpServer.emit).toBe(instrumented);
  });

  it('without instrumentation the gate moves in front of Express (emit replaced) and answers the same', async () => {
    stack = performanceStack(options());
    const httpServer = http.createServer(app(stack));
    server = await listen(httpServer);
    const first = await request(`${server.url}/items`);
    const refused = await request(`${server.url}/items`);
    expect(first.status).toBe(200);
    expect(refused.status).toBe(429);
    expect(refused.json<{ type: string }>().type).toBe('urn:perfstack:problem:rate-limited');
    expect(httpServer.emit).not.toBe(EventEmitter.prototype.emit);
  });
});
