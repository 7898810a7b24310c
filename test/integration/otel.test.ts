/**
 * OpenTelemetry: with a tracer provider and a context manager registered (the SDK's
 * BasicTracerProvider with an in-memory exporter, AsyncLocalStorage context), each layer's
 * decision is an event on the request's active span and the access log line carries the
 * span's `trace_id`/`span_id`; without them, nothing is recorded and lines carry no ids.
 * The request span is made the way the HTTP instrumentation makes it: around the server's
 * listener, active while the app runs.
 */
import http from 'node:http';
import { context, type Tracer, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import express from 'express';
import { type PerformanceStack, performanceStack } from 'perfstack';
import { createListener } from 'perfstack/node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../helpers/http.js';

const log = { warn() {}, error() {} };

let server: TestServer | undefined;
let stack: PerformanceStack | undefined;
let lines: Array<Record<string, unknown>> = [];
afterEach(async () => {
  await server?.close();
  await stack?.close();
  server = undefined;
  stack = undefined;
  lines = [];
});

function buildStack(): PerformanceStack {
  return performanceStack({
    log,
    redis: false,
    logger: { destination: { write: (line: string) => void lines.push(JSON.parse(line)) } },
    rateLimit: { limit: 2, window: '1m' },
    sizeLimit: { limit: '1kb' },
  });
}

function expressApp(s: PerformanceStack) {
  const app = express();
  app.use(s);
  app.get('/items/:id', (req, res) => {
    res.set('Cache-Control', 'max-age=60').json({ id: req.params.id });
  });
  app.post('/items', express.json(), (_req, res) => {
    res.status(201).end();
  });
  return app;
}

/** A listener that runs `app` inside an active server span, ended when the response finishes. */
function traced(tracer: Tracer, app: http.RequestListener): http.RequestListener {
  return (req, res) => {
    tracer.startActiveSpan(`${req.method} ${req.url}`, (span) => {
      res.on('finish', () => span.end());
      app(req, res);
    });
  };
}

/** The access line of `path` once it is written (the log line follows the response). */
async function lineOf(path: string): Promise<Record<string, unknown>> {
  for (let i = 0; i < 100; i++) {
    const line = lines.find((l) => (l.req as { url?: string } | undefined)?.url === path);
    if (line) return line;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no access line for ${path}`);
}

describe('without a tracer provider', () => {
  it('records nothing and the log lines carry no trace ids', async () => {
    stack = buildStack();
    server = await listen(expressApp(stack));
    expect((await request(`${server.url}/items/1`)).status).toBe(200);
    const line = await lineOf('/items/1');
    expect(line.reqId).toBeDefined();
    expect('trace_id' in line).toBe(false);
    expect('span_id' in line).toBe(false);
  });
});

describe('with a tracer provider and a context manager', () => {
  const exporter = new InMemorySpanExporter();
  let tracer: Tracer;
  beforeAll(() => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    trace.setGlobalTracerProvider(provider);
    tracer = trace.getTracer('perfstack-test');
  });
  afterAll(() => {
    trace.disable();
    context.disable();
  });
  afterEach(() => exporter.reset());

  /** The finished span of `name`, once exported. */
  async function spanOf(name: string): Promise<ReadableSpan> {
    for (let i = 0; i < 100; i++) {
      const span = exporter.getFinishedSpans().find((s) => s.name === name);
      if (span) return span;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`no span ${name}`);
  }
  const events = (span: ReadableSpan) => span.events.map((e) => [e.name, e.attributes]);

  it('Express: a miss, a hit, a 429 and a 413 each leave their decisions on the request span', async () => {
    stack = buildStack();
    server = await listen(traced(tracer, expressApp(stack)));

    expect((await request(`${server.url}/items/1`)).headers['x-cache']).toBe('MISS');
    const miss = await spanOf('GET /items/1');
    expect(events(miss)).toEqual([
      [
        'perfstack.rate_limit',
        {
          'perfstack.rate_limit.outcome': 'allowed',
          'perfstack.rate_limit.name': '2-in-1min',
          'perfstack.rate_limit.limit': 2,
          'perfstack.rate_limit.remaining': 1,
        },
      ],
      [
        'perfstack.circuit_breaker',
        { 'perfstack.breaker.name': 'GET /items/:id', 'perfstack.breaker.state': 'closed' },
      ],
      ['perfstack.cache', { 'perfstack.cache.outcome': 'miss', 'perfstack.route': '/items/:id' }],
    ]);
    const missLine = await lineOf('/items/1');
    expect(missLine.trace_id).toBe(miss.spanContext().traceId);
    expect(missLine.span_id).toBe(miss.spanContext().spanId);
    expect(missLine.trace_id).toMatch(/^[0-9a-f]{32}$/);

    exporter.reset();
    // The entry is stored in the background (compressed): wait for it before the hit.
    for (let i = 0; i < 100 && stack.cache.stats().entries === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await request(`${server.url}/items/1`)).headers['x-cache']).toBe('HIT');
    const hit = await spanOf('GET /items/1');
    expect(events(hit)).toEqual([
      ['perfstack.cache', { 'perfstack.cache.outcome': 'hit', 'perfstack.route': '/items/:id' }],
    ]);

    exporter.reset();
    await request(`${server.url}/items/2`);
    exporter.reset();
    expect((await request(`${server.url}/items/3`)).status).toBe(429);
    const limited = await spanOf('GET /items/3');
    expect(events(limited)).toEqual([
      [
        'perfstack.rate_limit',
        {
          'perfstack.rate_limit.outcome': 'blocked',
          'perfstack.rate_limit.name': '2-in-1min',
          'perfstack.rate_limit.limit': 2,
          'perfstack.rate_limit.remaining': 0,
        },
      ],
      ['perfstack.problem', { 'perfstack.problem.code': 'RATE_LIMITED' }],
      // The cache (before the limiter) looked the URL up and missed: the counters say so too.
      ['perfstack.cache', { 'perfstack.cache.outcome': 'miss', 'perfstack.route': '/items/:id' }],
    ]);

    exporter.reset();
    const big = await request(`${server.url}/items`, {
      method: 'POST',
      localAddress: '127.0.0.2', // a client the limiter has not seen
      headers: { 'content-type': 'application/json' },
      body: `{"x":"${'a'.repeat(2000)}"}`,
    });
    expect(big.status).toBe(413);
    const refused = await spanOf('POST /items');
    // The body limit is enforced as the route's parser reads: the request went through the
    // limiter and the breaker first; the cache passes POSTs by (bypass).
    expect(events(refused)).toEqual([
      [
        'perfstack.rate_limit',
        {
          'perfstack.rate_limit.outcome': 'allowed',
          'perfstack.rate_limit.name': '2-in-1min',
          'perfstack.rate_limit.limit': 2,
          'perfstack.rate_limit.remaining': 1,
        },
      ],
      ['perfstack.circuit_breaker', { 'perfstack.breaker.name': 'POST /items', 'perfstack.breaker.state': 'closed' }],
      ['perfstack.problem', { 'perfstack.problem.code': 'PAYLOAD_TOO_LARGE' }],
      ['perfstack.cache', { 'perfstack.cache.outcome': 'bypass', 'perfstack.route': '/items' }],
    ]);
  });

  it('node:http (createListener): the same events, and the ids on the log line', async () => {
    stack = buildStack();
    const listener = createListener(stack, (_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    });
    server = await listen(traced(tracer, listener));
    expect((await request(`${server.url}/plain`)).status).toBe(200);
    const span = await spanOf('GET /plain');
    expect(events(span).map(([name]) => name)).toEqual(['perfstack.rate_limit', 'perfstack.cache']);
    const line = await lineOf('/plain');
    expect(line.trace_id).toBe(span.spanContext().traceId);
    expect(line.span_id).toBe(span.spanContext().spanId);
  });

  it('a request outside any span records nothing and logs no ids', async () => {
    stack = buildStack();
    server = await listen(http.createServer(expressApp(stack)));
    expect((await request(`${server.url}/items/9`)).status).toBe(200);
    const line = await lineOf('/items/9');
    expect('trace_id' in line).toBe(false);
    expect(exporter.getFinishedSpans()).toEqual([]);
  });
});
