/**
 * The resilient outbound client against real local origins: failover when an origin dies
 * and its return after health checks, the retry budget in a full outage, idempotency,
 * Retry-After, trace propagation, the bulkhead and the metrics.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BulkheadFullError, type Client, createClient, isNoOriginAvailableError } from '@perfstack/circuit-breaker';
import { createRegistry, ensureRequestId } from '@perfstack/core';
import { afterEach, describe, expect, it } from 'vitest';
import { startOrigins, TestOrigin, until } from './client-origins.js';

const clients: Client[] = [];
const origins: TestOrigin[] = [];
const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(origins.splice(0).map((o) => o.kill()));
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

function track<T extends Client>(client: T): T {
  clients.push(client);
  return client;
}

async function three(): Promise<TestOrigin[]> {
  const started = await startOrigins('a', 'b', 'c');
  origins.push(...started);
  return started;
}

async function get(client: Client, path = '/work'): Promise<{ status: number; origin: string }> {
  const res = await client.request({ method: 'GET', path });
  const body = (await res.body.json()) as { origin: string };
  return { status: res.statusCode, origin: body.origin };
}

/**
 * A client on one real origin whose `/health` answers are `health(req, res)` (true when it
 * answered itself; false answers `ok`) and whose other paths answer `{ origin: name }`;
 * probes every 20 ms, given up at 50 ms, out after 2 failures.
 */
async function probedClient(
  name: string,
  health: (res: import('node:http').ServerResponse) => boolean,
): Promise<Client> {
  const server = createServer((req, res) => {
    if (req.url === '/health') {
      if (!health(res)) res.end('ok');
      return;
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ origin: name }));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return track(
    createClient(name, {
      origins: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      healthCheck: { path: '/health', interval: 20, timeout: 50, unhealthyThreshold: 2 },
      retry: false,
    }),
  );
}

async function metric(client: Client, line: string): Promise<number | undefined> {
  const text = await client.registry.metrics();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

describe('load balancing and failover across three real origins', () => {
  it('spreads calls evenly, loses no idempotent call when an origin dies mid-run, and takes it back after its health checks pass', async () => {
    const [a, b, c] = (await three()) as [TestOrigin, TestOrigin, TestOrigin];
    const client = track(
      createClient('fleet', {
        origins: [a.url, b.url, c.url],
        healthCheck: { path: '/health', interval: 50 },
        retry: { maxAttempts: 3, initialDelay: 5, maxDelay: 20 },
      }),
    );

    // Sequential calls, all origins idle: least-pending ties rotate, so exactly a third each.
    for (let i = 0; i < 30; i++) expect(await get(client)).toMatchObject({ status: 200 });
    expect([a.hits, b.hits, c.hits]).toEqual([10, 10, 10]);

    // Three workers; b is killed after the 15th call of the run.
    const results: { status: number; origin: string }[] = [];
    const failures: unknown[] = [];
    let killed: Promise<void> | undefined;
    const worker = async () => {
      for (let i = 0; i < 30; i++) {
        try {
          results.push(await get(client));
        } catch (error) {
          failures.push(error);
        }
        if (results.length === 15) killed ??= b.kill();
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    await killed;
    expect(failures).toEqual([]);
    expect(results).toHaveLength(90);
    expect(results.every((r) => r.status === 200)).toBe(true);
    const bHitsWhileDead = b.hits;
    await until(() => client.snapshot().origins[1]?.healthy === false);
    // Traffic moved: once b was out, a and c took every call.
    for (let i = 0; i < 20; i++) expect(await get(client)).toMatchObject({ status: 200 });
    expect(b.hits).toBe(bHitsWhileDead);
    expect(a.hits + c.hits + b.hits).toBe(30 + 90 + 20);

    // b comes back on the same port; the next probe brings it in.
    await b.revive();
    await until(() => client.snapshot().origins[1]?.healthy === true);
    const before = [a.hits, b.hits, c.hits];
    for (let i = 0; i < 30; i++) expect(await get(client)).toMatchObject({ status: 200 });
    expect([a.hits - (before[0] as number), b.hits - (before[1] as number), c.hits - (before[2] as number)]).toEqual([
      10, 10, 10,
    ]);
    expect(client.snapshot().origins.map((o) => [o.healthy, o.breaker.state])).toEqual([
      [true, 'closed'],
      [true, 'closed'],
      [true, 'closed'],
    ]);
    expect(await metric(client, `perfstack_client_origin_healthy{client="fleet",origin="${b.url}"}`)).toBe(1);
    expect(await metric(client, `perfstack_client_requests_total{client="fleet",origin="${a.url}",status="200"}`)).toBe(
      a.hits,
    );
    expect(await metric(client, 'perfstack_client_calls_total{client="fleet"}')).toBe(170);
    // The latency histogram: one observation per attempt, cumulative buckets up to +Inf.
    expect(
      await metric(client, `perfstack_client_request_duration_seconds_count{client="fleet",origin="${a.url}"}`),
    ).toBe(a.hits);
    expect(
      await metric(
        client,
        `perfstack_client_request_duration_seconds_bucket{le="+Inf",client="fleet",origin="${a.url}"}`,
      ),
    ).toBe(a.hits);
    expect(
      await metric(
        client,
        `perfstack_client_request_duration_seconds_bucket{le="10",client="fleet",origin="${a.url}"}`,
      ),
    ).toBe(a.hits);
    expect(
      await metric(client, `perfstack_circuit_breaker_state{breaker="client:fleet@${a.url}",state="closed"}`),
    ).toBe(1);
  });

  it('without health checks, the breaker of a dead origin opens and the calls go to the others', async () => {
    const [a, b] = (await three()) as [TestOrigin, TestOrigin, TestOrigin];
    const c = origins[2] as TestOrigin;
    await b.kill();
    const client = track(
      createClient('passive', {
        origins: [a.url, b.url, c.url],
        breaker: { failureThreshold: 2, resetTimeout: '1h' },
        retry: { maxAttempts: 3, initialDelay: 1, maxDelay: 1 },
      }),
    );
    for (let i = 0; i < 30; i++) expect(await get(client)).toMatchObject({ status: 200 });
    expect(a.hits + c.hits).toBe(30);
    const snap = client.snapshot().origins[1];
    expect(snap?.breaker.state).toBe('open');
    expect(snap?.healthy).toBe(false);
    expect(await metric(client, 'perfstack_client_retries_total{client="passive"}')).toBe(2);
    expect(
      await metric(client, `perfstack_client_requests_total{client="passive",origin="${b.url}",status="error"}`),
    ).toBe(2);
  });

  it('answers NoOriginAvailableError when every origin is out', async () => {
    const [a] = (await startOrigins('a')) as [TestOrigin];
    origins.push(a);
    await a.kill();
    const client = track(
      createClient('gone', { origins: a.url, breaker: { failureThreshold: 1, resetTimeout: '1h' }, retry: false }),
    );
    await expect(client.request({ path: '/' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    const error = await client.request({ path: '/' }).catch((e: unknown) => e);
    expect(isNoOriginAvailableError(error)).toBe(true);
    expect(error).toMatchObject({ code: 'NO_ORIGIN', status: 503, client: 'gone' });
  });

  it('takes out an origin whose health probes get no answer within healthCheck.timeout (the probe aborted), and back in once they answer', async () => {
    let hang = true;
    let probes = 0;
    let probesAborted = 0;
    const client = await probedClient('slow-health', (res) => {
      probes++;
      if (!hang) return false;
      // No answer: the client's probe timeout must abort it (the socket closes unanswered).
      res.on('close', () => {
        if (!res.writableEnded) probesAborted++;
      });
      return true;
    });
    expect(await get(client)).toEqual({ status: 200, origin: 'slow-health' });
    await until(() => client.snapshot().origins[0]?.healthy === false);
    // At least one probe reached the origin and was given up by the client unanswered (a later
    // one may time out before it arrives on a loaded machine).
    await until(() => probesAborted >= 1);
    expect(probes).toBeGreaterThanOrEqual(probesAborted);
    const error = await client.request({ path: '/' }).catch((e: unknown) => e);
    expect(isNoOriginAvailableError(error)).toBe(true);
    hang = false;
    await until(() => client.snapshot().origins[0]?.healthy === true);
    expect(await get(client)).toEqual({ status: 200, origin: 'slow-health' });
  });
  it('counts a probe whose body stalls after the headers as failed at healthCheck.timeout', async () => {
    let stall = true;
    const stalled: Array<import('node:http').ServerResponse> = [];
    const client = await probedClient('stalled-body', (res) => {
      if (!stall) return false;
      // 200 and its headers at once, then a body that never ends.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('o');
      stalled.push(res);
      return true;
    });
    expect(await get(client)).toEqual({ status: 200, origin: 'stalled-body' });
    // Two probes, each given up at 50 ms: out well before any body timeout of undici's.
    await until(() => client.snapshot().origins[0]?.healthy === false);
    expect(stalled.length).toBeGreaterThanOrEqual(2);
    stall = false;
    for (const res of stalled) res.destroy();
    await until(() => client.snapshot().origins[0]?.healthy === true);
    expect(await get(client)).toEqual({ status: 200, origin: 'stalled-body' });
  });
});

describe('retry budget', () => {
  it('caps retries at 10% of the calls during a full outage', async () => {
    const outage = await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        new TestOrigin(name, (_req, res) => {
          res.statusCode = 503;
          res.end('down');
        }).start(),
      ),
    );
    origins.push(...outage);
    const client = track(
      createClient('budget', {
        origins: outage.map((o) => o.url),
        retry: { maxAttempts: 3, initialDelay: 0, maxDelay: 0 },
        retryBudget: { ratio: 0.1, minPerSecond: 0, window: '60s' },
        breaker: { failureThreshold: 100_000 },
      }),
    );
    for (let i = 0; i < 100; i++) {
      const res = await client.request({ path: '/x' });
      expect(res.statusCode).toBe(503);
      expect(await res.body.text()).toBe('down');
    }
    const attempts = outage.reduce((sum, o) => sum + o.hits, 0);
    console.log(`retry budget: 100 calls in a full outage made ${attempts} attempts (without a budget: 300)`);
    expect(attempts).toBe(110);
    expect(await metric(client, 'perfstack_client_retries_total{client="budget"}')).toBe(10);
    expect(await metric(client, 'perfstack_client_retry_budget_exhausted_total{client="budget"}')).toBe(100);
  });
});

describe('retry-rate KPI', () => {
  it('degrades health() when retries exceed 10% of the calls', async () => {
    const o = await new TestOrigin('x', (_req, res) => {
      res.statusCode = 503;
      res.end();
    }).start();
    origins.push(o);
    const client = track(
      createClient('kpi', {
        origins: o.url,
        retry: { maxAttempts: 2, initialDelay: 0, maxDelay: 0 },
        retryBudget: false,
        breaker: { failureThreshold: 100 },
      }),
    );
    expect(client.health()).toEqual({ status: 'ok', detail: '1/1 origins available', out: [], retryRate: 0 });
    for (let i = 0; i < 5; i++) await (await client.request({ path: '/' })).body.dump();
    expect(o.hits).toBe(10);
    expect(client.health()).toEqual({
      status: 'degraded',
      detail: '1/1 origins available; retry rate 100.0% over 10%',
      out: [],
      retryRate: 1,
    });
  });
});

describe('idempotency', () => {
  async function failing(): Promise<TestOrigin> {
    const o = await new TestOrigin('x', (_req, res) => {
      res.statusCode = 503;
      res.end();
    }).start();
    origins.push(o);
    return o;
  }
  const retry = { maxAttempts: 3, initialDelay: 0, maxDelay: 0 };

  it('does not retry a POST', async () => {
    const o = await failing();
    const client = track(createClient('post', { origins: o.url, retry }));
    const res = await client.request({ method: 'POST', path: '/orders', body: '{"n":1}' });
    expect(res.statusCode).toBe(503);
    await res.body.dump();
    expect(o.hits).toBe(1);
  });

  it('does not retry a POST whose connection was refused', async () => {
    const o = await failing();
    await o.kill();
    const client = track(createClient('post-refused', { origins: o.url, retry }));
    await expect(client.request({ method: 'POST', path: '/orders', body: 'x' })).rejects.toMatchObject({
      code: 'ECONNREFUSED',
    });
    expect(await metric(client, 'perfstack_client_retries_total{client="post-refused"}')).toBeUndefined();
  });

  it('retries a POST marked idempotent, or every POST with retry.retryNonIdempotent', async () => {
    const o = await failing();
    const one = track(createClient('post-key', { origins: o.url, retry }));
    const res = await one.request({ method: 'POST', path: '/orders', body: 'x', idempotent: true });
    expect(res.statusCode).toBe(503);
    await res.body.dump();
    expect(o.hits).toBe(3);
    const all = track(createClient('post-all', { origins: o.url, retry: { ...retry, retryNonIdempotent: true } }));
    await (await all.request({ method: 'POST', path: '/orders', body: 'x' })).body.dump();
    expect(o.hits).toBe(6);
    expect(o.seen.map((s) => s.method)).toEqual(['POST', 'POST', 'POST', 'POST', 'POST', 'POST']);
  });

  it('retries PUT and DELETE (idempotent by RFC 9110)', async () => {
    const o = await failing();
    const client = track(createClient('put', { origins: o.url, retry, breaker: { failureThreshold: 100 } }));
    await (await client.request({ method: 'PUT', path: '/a', body: 'x' })).body.dump();
    await (await client.request({ method: 'DELETE', path: '/a' })).body.dump();
    expect(o.seen.map((s) => s.method)).toEqual(['PUT', 'PUT', 'PUT', 'DELETE', 'DELETE', 'DELETE']);
  });
});

describe('connection pooling', () => {
  it('reuses keep-alive connections: 28 calls (20 sequential, 8 concurrent) open at most 10 connections', async () => {
    const [a] = (await startOrigins('pooled')) as [TestOrigin];
    origins.push(a);
    const client = track(createClient('pooled', { origins: a.url }));
    for (let i = 0; i < 20; i++) expect(await get(client)).toMatchObject({ status: 200 });
    // undici's Pool may open a second connection while the first is released after a body is read.
    expect(a.connections).toBeLessThanOrEqual(2);
    await Promise.all(Array.from({ length: 8 }, () => get(client)));
    expect(a.hits).toBe(28);
    // The concurrent calls reuse the idle connections and open one each for the rest.
    expect(a.connections).toBeLessThanOrEqual(10);
  });
});

describe('presets', () => {
  it("takes the named preset's values under the caller's: 'default' makes 3 attempts, 'critical' 4, an explicit maxAttempts wins", async () => {
    const o = await new TestOrigin('p', (_req, res) => {
      res.statusCode = 503;
      res.end();
    }).start();
    origins.push(o);
    const cases = [
      [{}, 3],
      [{ preset: 'default' }, 3],
      [{ preset: 'critical' }, 4],
      [{ preset: 'critical', retry: { maxAttempts: 2 } }, 2],
    ] as const;
    for (const [i, [options, attempts]] of cases.entries()) {
      const before = o.hits;
      // random 0: no backoff wait; the breaker stays closed through the 503s; no hedging
      // ('critical' hedges after 100 ms: a slow machine would add a hedged attempt).
      const client = track(
        createClient(`preset-${i}`, {
          origins: o.url,
          random: () => 0,
          breaker: { failureThreshold: 100 },
          hedge: false,
          ...options,
        }),
      );
      const res = await client.request({ path: '/' });
      expect(res.statusCode).toBe(503);
      await res.body.dump();
      expect(o.hits - before).toBe(attempts);
    }
  });
});

describe('Retry-After', () => {
  it('waits at least Retry-After before the retry', async () => {
    let n = 0;
    const o = await new TestOrigin('r', (_req, res) => {
      if (n++ === 0) {
        res.writeHead(503, { 'retry-after': '1' });
        res.end();
      } else res.end('ok');
    }).start();
    origins.push(o);
    const client = track(
      createClient('retry-after', { origins: o.url, retry: { initialDelay: 0, maxDelay: 0 }, random: () => 0 }),
    );
    const res = await client.request({ path: '/' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('ok');
    expect(o.hits).toBe(2);
    const gap = (o.seen[1]?.at as number) - (o.seen[0]?.at as number);
    console.log(`Retry-After: 1 → second attempt ${gap.toFixed(0)} ms after the first`);
    expect(gap).toBeGreaterThanOrEqual(990);
  });

  it('answers the 503 at once when Retry-After reaches past the deadline', async () => {
    const o = await new TestOrigin('r', (_req, res) => {
      res.writeHead(503, { 'retry-after': '30' });
      res.end('later');
    }).start();
    origins.push(o);
    const client = track(createClient('retry-after-long', { origins: o.url, retry: { deadline: '5s' } }));
    const res = await client.request({ path: '/' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('30');
    expect(await res.body.text()).toBe('later');
    expect(o.hits).toBe(1);
  });
});

describe('trace propagation', () => {
  const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

  async function inboundServer(client: Client): Promise<string> {
    const server = createServer((req: IncomingMessage, res) => {
      ensureRequestId(req, res);
      client.request({ path: '/downstream', inbound: req }).then(
        async (down) => {
          await down.body.dump();
          res.end(String(down.statusCode));
        },
        () => res.end('error'),
      );
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('forwards the inbound X-Request-Id and traceparent', async () => {
    const [o] = (await startOrigins('t')) as [TestOrigin];
    origins.push(o);
    const client = track(createClient('trace', { origins: o.url }));
    const url = await inboundServer(client);
    const res = await fetch(`${url}/`, { headers: { 'x-request-id': 'req-abc-123', traceparent: TRACEPARENT } });
    expect(await res.text()).toBe('200');
    expect(o.seen[0]?.headers['x-request-id']).toBe('req-abc-123');
    expect(o.seen[0]?.headers.traceparent).toBe(TRACEPARENT);
  });

  it('forwards the id assigned to an inbound request without one, and drops a malformed traceparent', async () => {
    const [o] = (await startOrigins('t')) as [TestOrigin];
    origins.push(o);
    const client = track(createClient('trace2', { origins: o.url }));
    const url = await inboundServer(client);
    const res = await fetch(`${url}/`, { headers: { traceparent: 'not-a-traceparent' } });
    expect(await res.text()).toBe('200');
    const assigned = res.headers.get('x-request-id');
    expect(assigned).toMatch(/^[0-9a-f-]{36}$/);
    expect(o.seen[0]?.headers['x-request-id']).toBe(assigned);
    expect(o.seen[0]?.headers.traceparent).toBeUndefined();
  });

  it('takes explicit ids, then the context option; a caller header wins', async () => {
    const [o] = (await startOrigins('t')) as [TestOrigin];
    origins.push(o);
    const client = track(
      createClient('trace3', {
        origins: o.url,
        context: () => ({ requestId: 'from-context', traceparent: TRACEPARENT }),
      }),
    );
    await (await client.request({ path: '/1', requestId: 'explicit-1' })).body.dump();
    await (await client.request({ path: '/2' })).body.dump();
    await (await client.request({ path: '/3', headers: { 'X-Request-Id': 'caller' } })).body.dump();
    expect(o.seen.map((s) => [s.path, s.headers['x-request-id'], s.headers.traceparent])).toEqual([
      ['/1', 'explicit-1', undefined],
      ['/2', 'from-context', TRACEPARENT],
      ['/3', 'caller', TRACEPARENT],
    ]);
  });
});

describe('bulkhead and per-attempt timeout', () => {
  it('turns away a call beyond maxConcurrent + maxQueue with BulkheadFullError', async () => {
    const held: Array<() => void> = [];
    const o = await new TestOrigin('slow', (_req, res) => {
      held.push(() => res.end('done'));
    }).start();
    origins.push(o);
    const client = track(createClient('bulk', { origins: o.url, maxConcurrent: 1, maxQueue: 1 }));
    const first = client.request({ path: '/1' });
    const second = client.request({ path: '/2' });
    await expect(client.request({ path: '/3' })).rejects.toBeInstanceOf(BulkheadFullError);
    expect(client.snapshot()).toMatchObject({ active: 1, queued: 1 });
    await until(() => held.length === 1);
    held.shift()?.();
    expect(await (await first).body.text()).toBe('done');
    await until(() => held.length === 1);
    held.shift()?.();
    expect(await (await second).body.text()).toBe('done');
    expect(o.seen.map((s) => s.path)).toEqual(['/1', '/2']);
  });

  it('lets a call waiting for a bulkhead slot leave the queue when its signal aborts', async () => {
    const held: Array<() => void> = [];
    const o = await new TestOrigin('slow', (_req, res) => {
      held.push(() => res.end('done'));
    }).start();
    origins.push(o);
    const client = track(createClient('bulk-abort', { origins: o.url, maxConcurrent: 1, maxQueue: 1 }));
    const first = client.request({ path: '/1' });
    const controller = new AbortController();
    const waiting = client.request({ path: '/2', signal: controller.signal });
    expect(client.snapshot()).toMatchObject({ active: 1, queued: 1 });
    controller.abort(new Error('caller gave up'));
    await expect(waiting).rejects.toThrow('caller gave up');
    expect(client.snapshot()).toMatchObject({ active: 1, queued: 0 });
    await until(() => held.length === 1);
    held.shift()?.();
    expect(await (await first).body.text()).toBe('done');
    expect(o.seen.map((s) => s.path)).toEqual(['/1']);
  });

  it('rejects options it does not know, naming them', () => {
    const registry = createRegistry();
    expect(() => createClient('x', { origins: [], registry })).toThrow(
      '@perfstack/circuit-breaker: option "origins" must be a base URL or a non-empty array of them',
    );
    expect(() => createClient('x', { origins: 'ftp://a' })).toThrow(
      'option "origins[0]" must be an absolute http(s) URL',
    );
    expect(() => createClient('', { origins: 'http://a' })).toThrow('option "name" must be a non-empty name');
    expect(() => createClient('x', { origins: 'http://a', retry: { maxAttempts: 0 } })).toThrow(RangeError);
    expect(() => createClient('x', { origins: 'http://a', retry: { tries: 3 } as never })).toThrow('tries');
    expect(() => createClient('x', { origins: 'http://a', preset: 'fast' as never })).toThrow('preset');
    expect(() => createClient('x', { origins: 'http://a', maxQueue: 3 })).toThrow('maxQueue');
    expect(() => createClient('x', { origins: 'http://a', hedge: 5 as never })).toThrow('hedge');
  });
});
