/**
 * Outbound work in the preset's `/health` and dashboard (issue 19, items 1 and 2): a client
 * with one live and one dead origin degrades `/health` naming the client and the origin that
 * is out; its retries over 10 % of its calls raise the seed's alert in the snapshot and a
 * recommendation in the report; an offload pool made with `stack.offload()` shows its queue
 * depth, wait times and utilisation; an adaptive limit shows per route.
 */
import { createServer, type Server } from 'node:http';
import express from 'express';
import { type PerformanceStack, performanceStack } from 'perfstack';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../helpers/http.js';

const quiet = { warn() {}, error() {} };
const silentLog = { destination: { write() {} } as never };
const TASK = new URL('./fixtures/cpu-task.mjs', import.meta.url);

let servers: TestServer[] = [];
let stack: PerformanceStack | undefined;
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
  await stack?.close();
  stack = undefined;
});

/** A URL nothing listens on: a server that was started and closed. */
async function deadOrigin(): Promise<string> {
  const s = await listen(createServer() as Server);
  await s.close();
  return s.url;
}

interface Snapshot {
  outbound: {
    clients: Array<{
      name: string;
      origins: Array<{ origin: string; healthy: boolean; pending: number; state: string }>;
      active: number;
      queued: number;
      retryRate: number;
    }>;
    pools: Array<Record<string, number | string>>;
    retryRate: number;
  };
  sources: Record<string, boolean>;
  alerts: Array<{ id: string; rule: string; severity: string; threshold: number; message: string; layer: string }>;
  breakers: { list: Array<{ name: string; concurrency?: { name: string; limit: number } }> };
}

describe('outbound clients and offload pools in /health and on the dashboard', () => {
  it('names the client and the origin out in /health, alerts on a retry rate over 10 %, shows pools and limits', async () => {
    const live = await listen(
      createServer((_req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end('{"stock":7}');
      }) as Server,
    );
    servers.push(live);
    const dead = await deadOrigin();
    stack = performanceStack({
      env: false,
      log: quiet,
      logger: silentLog,
      circuitBreaker: { adaptiveConcurrency: { initialLimit: 50 } },
    });
    const inventory = stack.client('inventory', { origins: [dead, live.url], retry: { maxAttempts: 3 } });
    const thumbnails = stack.offload(TASK, { pool: 'thumbnails', maxThreads: 1, maxQueue: 3 });
    const app = express();
    app.use('/dashboard', stack.dashboard());
    app.use(stack);
    app.get('/health', stack.health());
    app.get('/stock', async (req, res) => {
      const down = await inventory.request({ path: '/stock', inbound: req });
      res.json(await down.body.json());
    });
    app.get('/thumb', thumbnails);
    const server = await listen(app);
    servers.push(server);

    // Five calls: each tries the dead origin first (least pending, round robin; no active
    // health check), is retried on the live one, and no call fails. The fifth failure opens
    // the dead origin's breaker: it is out. 5 retries in 5 calls: a 100 % retry rate.
    for (let i = 0; i < 5; i++) {
      const r = await request(`${server.url}/stock`);
      expect([r.status, r.json()]).toEqual([200, { stock: 7 }]);
    }
    const thumb = await request(`${server.url}/thumb?ms=5&id=t1`);
    expect(thumb.json()).toEqual({ id: 't1', ms: 5, priority: null });

    const health = await request(`${server.url}/health`);
    const body = health.json<{ status: string; checks: Record<string, { status: string; detail: string }> }>();
    expect(body.status).toBe('degraded');
    expect(body.checks.clients).toMatchObject({
      status: 'degraded',
      detail: `inventory: 1/2 origins available (out: ${dead}); retry rate 100.0% over 10%`,
    });

    const snapshot = (await request(`${server.url}/dashboard/api/snapshot`)).json<Snapshot>();
    expect(snapshot.sources.outbound).toBe(true);
    expect(snapshot.outbound.clients).toEqual([
      {
        name: 'inventory',
        origins: [
          { origin: dead, healthy: false, pending: 0, state: 'open' },
          { origin: live.url, healthy: true, pending: 0, state: 'closed' },
        ],
        active: 0,
        queued: 0,
        retryRate: 1,
      },
    ]);
    expect(snapshot.outbound.retryRate).toBe(1);
    const pool = snapshot.outbound.pools[0];
    expect(snapshot.outbound.pools).toHaveLength(1);
    expect(pool).toMatchObject({ pool: 'thumbnails', running: 0, queued: 0, maxQueue: 3, completed: 1, shed: 0 });
    expect(pool?.threads).toBeGreaterThanOrEqual(1);
    for (const figure of ['utilization', 'waitP50Ms', 'waitP99Ms', 'runP50Ms', 'runP99Ms']) {
      expect(typeof pool?.[figure]).toBe('number');
    }
    expect(pool?.runP50Ms).toBeGreaterThan(0);
    const retryAlert = snapshot.alerts.find((a) => a.id === 'retry-rate:inventory');
    expect(retryAlert).toMatchObject({
      rule: 'retry-rate',
      severity: 'warning',
      threshold: 0.1,
      layer: 'client',
      message: `Outbound client "inventory" retries 100.0% of its calls (over 10%); origins out: ${dead}.`,
    });
    const limits = Object.fromEntries(snapshot.breakers.list.map((b) => [b.name, b.concurrency?.limit]));
    expect(limits['GET /stock']).toBe(50);
    expect(snapshot.breakers.list.find((b) => b.name === 'GET /stock')?.concurrency?.name).toBe('GET /stock');

    const report = (await request(`${server.url}/dashboard/api/report`)).json<{
      recommendations: Array<{ rule: string; layer: string; route: string | null; impact: number }>;
    }>();
    expect(report.recommendations.filter((r) => r.rule === 'retry-rate')).toEqual([
      expect.objectContaining({ rule: 'retry-rate', layer: 'client', route: 'inventory', impact: 0 }),
    ]);
  });
});
