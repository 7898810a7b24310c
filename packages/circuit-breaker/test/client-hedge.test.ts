/**
 * Request hedging against real origins, one of them slow: the hedged attempt goes to
 * another origin after `hedge.delay`, the first answer wins and the slow attempt is
 * cancelled. The p99 figures are printed; the assertions are bounds the slow origin's
 * fixed 1 s makes safe on a loaded machine.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Client, createClient } from '@perfstack/circuit-breaker';
import { afterEach, describe, expect, it } from 'vitest';
import { quantile, TestOrigin, until } from './client-origins.js';

const SLOW_MS = 1000;
const clients: Client[] = [];
const origins: TestOrigin[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(origins.splice(0).map((o) => o.kill()));
});

let cancelled = 0;
function slow(_req: IncomingMessage, res: ServerResponse): void {
  const timer = setTimeout(() => res.end(JSON.stringify({ origin: 'slow' })), SLOW_MS);
  res.on('close', () => {
    if (!res.writableFinished) {
      cancelled++;
      clearTimeout(timer);
    }
  });
}

async function run(client: Client, calls: number): Promise<{ latencies: number[]; from: string[] }> {
  const latencies: number[] = [];
  const from: string[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    const res = await client.request({ path: '/item' });
    expect(res.statusCode).toBe(200);
    from.push(((await res.body.json()) as { origin: string }).origin);
    latencies.push(performance.now() - t0);
  }
  return { latencies, from };
}

describe('hedging', () => {
  it('cuts p99 when one of three origins is slow', async () => {
    const a = await new TestOrigin('a').start();
    const b = await new TestOrigin('slow', slow).start();
    const c = await new TestOrigin('c').start();
    origins.push(a, b, c);
    const list = [a.url, b.url, c.url];

    const plain = createClient('plain', { origins: list, timeout: '5s' });
    clients.push(plain);
    const without = await run(plain, 15);

    const hedged = createClient('hedged', { origins: list, timeout: '5s', hedge: { delay: 50 } });
    clients.push(hedged);
    cancelled = 0;
    const withHedge = await run(hedged, 15);

    const p99Without = quantile(without.latencies, 0.99);
    const p99With = quantile(withHedge.latencies, 0.99);
    const p50With = quantile(withHedge.latencies, 0.5);
    console.log(
      `hedging, 15 sequential calls over 3 origins, one answering after ${SLOW_MS} ms: ` +
        `p99 without ${p99Without.toFixed(1)} ms, with hedge.delay 50 ms ${p99With.toFixed(1)} ms (p50 ${p50With.toFixed(1)} ms)`,
    );
    // Without hedging, a third of the calls wait for the slow origin.
    expect(without.from.filter((o) => o === 'slow')).toHaveLength(5);
    expect(p99Without).toBeGreaterThanOrEqual(SLOW_MS - 5);
    // With hedging, every call is answered by a fast origin long before the slow one would.
    expect(withHedge.from.filter((o) => o === 'slow')).toHaveLength(0);
    expect(p99With).toBeLessThan(SLOW_MS / 2);
    const text = await hedged.registry.metrics();
    const hedges = Number(/perfstack_client_hedges_total\{client="hedged"\} (\d+)/.exec(text)?.[1]);
    expect(hedges).toBeGreaterThanOrEqual(1);
    // The losing attempts were cancelled: the slow origin saw its connections close early.
    await until(() => cancelled >= 1);
    expect(cancelled).toBeLessThanOrEqual(hedges);
  });
});
