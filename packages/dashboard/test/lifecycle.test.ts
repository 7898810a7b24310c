import http from 'node:http';
import { createSharedRedis } from '@perfstack/core';
import { dashboard } from '@perfstack/dashboard';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { listen, waitFor } from '../../../test/helpers/http.js';
import { startRedisServer, uniquePrefix } from '../../../test/helpers/redis.js';
import { fakeSources, memoryLogger } from './fakes.js';

const realSetInterval = globalThis.setInterval;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('lifecycle', () => {
  it('every dashboard timer is unref()ed, and close() clears them all and ends the streams', async () => {
    const redisServer = await startRedisServer();
    const redis = createSharedRedis({ url: redisServer.url, keyPrefix: uniquePrefix('life'), logger: memoryLogger() });
    await redis.connect();
    const created: NodeJS.Timeout[] = [];
    const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
    setIntervalSpy.mockImplementation(((...args: Parameters<typeof setInterval>) => {
      const timer = realSetInterval(...args);
      created.push(timer);
      return timer;
    }) as typeof setInterval);
    const clearIntervalSpy = vi.spyOn(globalThis, 'clearInterval');

    // No timing source: the process sampler runs. With Redis: the fleet timer runs. One stream: the stream timer.
    const { timing: _timing, ...sources } = fakeSources();
    const board = dashboard({
      instanceId: 'life',
      redis,
      sources,
      basePath: '/d',
      streamInterval: 100,
      fleetInterval: 100,
    });
    const server = await listen((req, res) => board(req, res, () => res.end()));
    let received = '';
    let ended = false;
    const req = http.get(`${server.url}/d/api/stream`, { agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        received += chunk;
      });
      res.on('end', () => {
        ended = true;
      });
      res.on('error', () => {});
    });
    req.on('error', () => {});
    await waitFor(() => received.split('event: snapshot').length > 3);

    const ours = created.filter((t) => t.hasRef !== undefined);
    expect(ours.length).toBeGreaterThanOrEqual(3);
    for (const timer of ours) expect(timer.hasRef()).toBe(false);

    await board.close();
    await board.close();
    await waitFor(() => ended);
    for (const timer of ours) expect(clearIntervalSpy).toHaveBeenCalledWith(timer);
    vi.restoreAllMocks();
    req.destroy();
    await server.close();
    await redis.close();
    await redisServer.stop();
  });
});
