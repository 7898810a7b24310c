/**
 * Three server processes sharing one Redis enforce one limit exactly: limit 50, 600
 * concurrent requests spread over the three → exactly 50 pass. The children run the built
 * packages (`dist`); this suite builds them first (a no-op when up to date).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../../test/helpers/http.js';
import { cleanPrefix, redisUrl, uniquePrefix } from '../../../test/helpers/redis.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/fleet-server.mjs', import.meta.url));

describe('a fleet sharing Redis', () => {
  const children: ChildProcess[] = [];
  const ports: number[] = [];
  let url = '';
  const prefix = uniquePrefix('fleet');

  beforeAll(async () => {
    execFileSync('npx', ['tsc', '-b', 'packages/rate-limit'], { cwd: root, stdio: 'ignore' });
    url = await redisUrl();
    for (let i = 0; i < 3; i++) {
      const child = spawn(process.execPath, [fixture], {
        env: { ...process.env, REDIS_URL: url, KEY_PREFIX: prefix, LIMIT: '50' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      const line = await new Promise<string>((resolve, reject) => {
        let buffer = '';
        child.stdout?.on('data', (chunk: Buffer) => {
          buffer += chunk.toString();
          const nl = buffer.indexOf('\n');
          if (nl !== -1) resolve(buffer.slice(0, nl));
        });
        child.once('exit', (code) => reject(new Error(`fleet server exited with ${code}`)));
      });
      const ready = JSON.parse(line) as { port: number; up: boolean };
      expect(ready.up).toBe(true);
      ports.push(ready.port);
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    if (url) await cleanPrefix(url, prefix);
  });

  it('limit 50, 600 concurrent requests over three processes → exactly 50 pass', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    try {
      const responses = await Promise.all(
        Array.from({ length: 600 }, (_, i) => request(`http://127.0.0.1:${ports[i % 3]}/`, { agent, timeout: 20_000 })),
      );
      const byStatus: Record<number, number> = {};
      for (const res of responses) byStatus[res.status] = (byStatus[res.status] ?? 0) + 1;
      expect(byStatus).toEqual({ 200: 50, 429: 550 });
    } finally {
      agent.destroy();
    }
  });
});
