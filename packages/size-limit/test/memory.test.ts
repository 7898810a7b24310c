/**
 * 100 clients each start a 50 MB chunked body against a 1 MB limit, at once. Every one
 * gets its 413, stops sending, and the process keeps (almost) nothing: the limiter never
 * buffers a body, it counts it as it arrives and drops it past the limit.
 *
 * Memory is measured, not time: V8 heap plus ArrayBuffer memory (where Buffers live),
 * after a forced GC before and after, and sampled every few ms during the run for the peak.
 * Buffering the 1 MB each client is allowed would alone hold 100 MB.
 */
import type { RequestListener } from 'node:http';
import v8 from 'node:v8';
import vm from 'node:vm';
import { sizeLimit } from '@perfstack/size-limit';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, type TestServer, waitFor } from '../../../test/helpers/http.js';
import { openRequest, streamBody } from './client.js';

const MB = 1024 * 1024;
const CLIENTS = 100;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function used(): number {
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

function settle(): number {
  for (let i = 0; i < 3; i++) gc();
  return used();
}

describe('100 clients × 50 MB chunked bodies against a 1 MB limit', () => {
  const limiter = sizeLimit({ limit: '1mb' });
  let server: TestServer;
  let received = 0;

  beforeAll(async () => {
    const app = express();
    app.use(limiter);
    app.post('/upload', (req, res) => {
      req.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      req.on('end', () => res.end('unreachable'));
    });
    server = await listen(app as unknown as RequestListener);
  });

  afterAll(async () => {
    await server.close();
    await limiter.close();
  });

  async function flood(chunk: Buffer, clients = CLIENTS): Promise<{ statuses: number[]; sent: number[] }> {
    const results = await Promise.all(
      Array.from({ length: clients }, async () => {
        const open = openRequest(`${server.url}/upload`, { headers: { 'transfer-encoding': 'chunked' } });
        const sent = streamBody(open, 50 * MB, chunk.length, chunk);
        const res = await open.response;
        return { status: res.status, sent: await sent };
      }),
    );
    return { statuses: results.map((r) => r.status), sent: results.map((r) => r.sent) };
  }

  async function drained(): Promise<void> {
    await waitFor(
      () => new Promise<boolean>((resolve) => server.server.getConnections((_e, count) => resolve(count === 0))),
      10_000,
    );
  }

  it('answers every client with 413 and leaves the heap within a small bound', async () => {
    const chunk = Buffer.alloc(256 * 1024, 0x61);
    // Warm-up round: JIT, lazily created internals, the agent-less socket paths.
    await flood(chunk, 10);
    await drained();
    const before = settle();
    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, used());
    }, 5);
    received = 0;
    let run: Awaited<ReturnType<typeof flood>>;
    try {
      run = await flood(chunk);
      await drained();
    } finally {
      clearInterval(sampler);
    }
    const after = settle();

    expect(run.statuses).toEqual(Array.from({ length: CLIENTS }, () => 413));
    // Every client stopped early; the handler never got more than the limit from any of them.
    for (const sent of run.sent) expect(sent).toBeLessThan(50 * MB);
    expect(received).toBeLessThanOrEqual(CLIENTS * MB);
    expect(limiter.stats().rejected.PAYLOAD_TOO_LARGE).toBe(CLIENTS + 10);
    // What stays after GC: nothing per request (a few MB of slack for V8 and test bookkeeping).
    expect(after - before).toBeLessThan(8 * MB);
    // The peak includes socket read buffers awaiting GC (30-50 MB here); buffering the
    // bodies up to the limit would hold 100 MB live on top of that.
    expect(peak - before).toBeLessThan(90 * MB);
    console.info(
      `[size-limit memory] growth after GC ${((after - before) / MB).toFixed(1)} MB, peak ${((peak - before) / MB).toFixed(1)} MB, sent per client ${(run.sent.reduce((a, b) => a + b, 0) / CLIENTS / MB).toFixed(1)} MB`,
    );
  });
});
