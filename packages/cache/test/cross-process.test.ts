import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createClient } from '@keyv/redis';
import { cache, responseCache } from '@perfstack/cache';
import { createSharedRedis, silentLogger } from '@perfstack/core';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServerHandle, startRedisServer } from '../../../test/helpers/redis.js';
import { request as direct, serverTracker, waitFor } from './helpers.js';

/** Both processes sit behind one load balancer: requests carry the public Host (part of the key). */
const request: typeof direct = (url, options = {}) =>
  direct(url, { ...options, headers: { host: 'shop.example', ...options.headers } });

const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/instance.mjs', import.meta.url));

describe('two server processes sharing one Redis (the child runs the built dist)', () => {
  let server: RedisServerHandle;
  let child: ChildProcess;
  let childUrl: string;
  const servers = serverTracker();

  beforeAll(async () => {
    execFileSync(`${root}node_modules/.bin/tsc`, ['-b', 'packages/cache'], { cwd: root, stdio: 'pipe' });
    server = await startRedisServer();
    child = spawn(process.execPath, [fixture], {
      env: { ...process.env, REDIS_URL: server.url, TAG: 'products' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const [line] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
    childUrl = `http://127.0.0.1:${(JSON.parse(line.toString()) as { port: number }).port}`;
  }, 60_000);

  afterAll(async () => {
    await servers.closeAll();
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await once(child, 'exit');
    }
    await server.stop();
  });

  it('an entry stored by this process is a HIT in the child; tag invalidation here clears the child', async () => {
    const redis = createSharedRedis({ url: server.url, logger: silentLogger });
    const local = responseCache({ redis, logger: silentLogger });
    const admin = createClient({ url: server.url });
    admin.on('error', () => {});
    await admin.connect();
    try {
      await waitFor(async () => {
        const reply = (await admin.sendCommand(['PUBSUB', 'NUMSUB', 'perfstack:cache:events'])) as [string, number];
        return redis.isUp && Number(reply[1]) >= 2;
      }, 10_000);
      const app = express();
      app.use(local);
      let calls = 0;
      app.get('/shared', cache({ ttl: '5m', tags: ['products'] }), (req, res) => {
        calls++;
        res.json({ from: 'origin', url: req.url });
      });
      const { url } = await servers.listen(app);
      const listener = admin.duplicate();
      listener.on('error', () => {});
      await listener.connect();
      const events: string[] = [];
      await listener.subscribe('perfstack:cache:events', (m: string) => events.push(m));
      expect((await request(`${url}/shared`)).headers['x-cache']).toBe('MISS');
      await waitFor(() => events.some((e) => e.includes('"stored"')));
      await listener.close();
      await new Promise((r) => setTimeout(r, 20));
      expect(await admin.exists('perfstack:cache::/shared http://shop.example')).toBe(1);
      // The child learns about the entry through pub/sub, then reads it from Redis.
      await waitFor(async () => (await request(`${childUrl}/shared`)).headers['x-cache'] === 'HIT', 5000);
      expect((await request(`${childUrl}/calls`)).json()).toEqual({ products: 0 });
      expect(calls).toBe(1);
      expect(await local.invalidate({ tags: ['products'] })).toBe(1);
      // Within a second (the waitFor limit).
      await waitFor(async () => (await request(`${childUrl}/shared`)).headers['x-cache'] === 'MISS', 1000);
      expect((await request(`${childUrl}/calls`)).json()).toEqual({ products: 1 });
    } finally {
      await admin.close();
      await local.close();
      await redis.close();
    }
  });

  it('close() leaves no handle open: a process using the cache with Redis exits by itself', async () => {
    const exiting = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/exit.mjs', import.meta.url))], {
      env: { ...process.env, REDIS_URL: server.url },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    exiting.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const timer = setTimeout(() => exiting.kill('SIGKILL'), 10_000);
    const [code] = (await once(exiting, 'exit')) as [number | null];
    clearTimeout(timer);
    expect(output).toBe('closed\n');
    expect(code).toBe(0);
  });
});
