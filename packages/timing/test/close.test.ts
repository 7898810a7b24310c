import { silentLogger } from '@perfstack/core';
import { timing } from '@perfstack/timing';
import express from 'express';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';

let server: TestServer | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await server?.close();
  server = undefined;
});

describe('close()', () => {
  it('samples on an unref()ed timer and clears it on close, leaving no active handle', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
    const clearIntervalSpy = vi.spyOn(globalThis, 'clearInterval');
    const t = timing({ logger: silentLogger, sampleInterval: 200 });
    expect(setIntervalSpy).toHaveBeenCalledTimes(1);
    const timer = setIntervalSpy.mock.results[0]?.value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
    // An unref()ed timer does not count as an active resource: nothing keeps the process alive.
    expect(process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap')).toEqual(before);

    await t.close();
    expect(clearIntervalSpy).toHaveBeenCalledWith(timer);
    expect(process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap')).toEqual(before);
    await t.close(); // safe twice
    expect(clearIntervalSpy).toHaveBeenCalledTimes(1);
  });

  it('samples on its own every sampleInterval until closed', async () => {
    const sampleProcess = vi.fn(() => ({
      rssBytes: 1,
      heapUsedBytes: 1,
      heapTotalBytes: 1,
      heapLimitBytes: 2,
      eventLoopDelayMs: { p50: 0, p99: 0, max: 0 },
      cpuPercent: 1,
      uptimeSeconds: 1,
    }));
    const t = timing({ logger: silentLogger, sampleInterval: 100, sampleProcess, defaultMetrics: false });
    expect(sampleProcess).toHaveBeenCalledTimes(1); // at construction
    await waitFor(() => sampleProcess.mock.calls.length >= 3); // then on the timer
    await t.close();
    const calls = sampleProcess.mock.calls.length;
    await new Promise((r) => setTimeout(r, 250));
    expect(sampleProcess.mock.calls.length).toBe(calls);
  });

  it('lets requests through unmeasured after close', async () => {
    const t = timing({ logger: silentLogger, defaultMetrics: false });
    const app = express();
    app.use(t);
    app.get('/x', (_req, res) => {
      res.send('ok');
    });
    server = await listen(app);
    expect((await request(`${server.url}/x`)).headers['server-timing']).toMatch(/^total;dur=/);
    await t.close();
    const after = await request(`${server.url}/x`);
    expect(after.status).toBe(200);
    expect(after.text).toBe('ok');
    expect(after.headers['server-timing']).toBeUndefined();
    expect(t.snapshot().totalRequests).toBe(1);
  });
});
