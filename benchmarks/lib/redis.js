/**
 * Redis for the Redis scenarios: REDIS_URL, else 127.0.0.1:6379 when it answers, else a
 * private redis-server on a free port (stopped at the end). Each run owns one key
 * prefix and deletes only keys under it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { freePort } from './server-process.js';

function ping(port, host, timeout = 500) {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeout, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

/**
 * @returns {Promise<{ url: string, prefix: string, source: string, close(): Promise<void> } | { unavailable: string }>}
 */
export async function resolveRedis() {
  const prefix = `perfstack-bench:${randomBytes(4).toString('hex')}:`;
  const cleanupOnly = (url, source) => ({ url, prefix, source, close: () => deletePrefix(url, prefix) });
  if (process.env.REDIS_URL) return cleanupOnly(process.env.REDIS_URL, 'REDIS_URL');
  if (await ping(6379, '127.0.0.1')) return cleanupOnly('redis://127.0.0.1:6379', 'local 127.0.0.1:6379');
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    return { unavailable: 'no Redis (set REDIS_URL, run one on 127.0.0.1:6379, or install redis-server)' };
  }
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  for (let i = 0; i < 50 && !(await ping(port, '127.0.0.1')); i++) await new Promise((r) => setTimeout(r, 100));
  const url = `redis://127.0.0.1:${port}`;
  return {
    url,
    prefix,
    source: `private redis-server on port ${port}`,
    async close() {
      child.kill('SIGTERM');
    },
  };
}

/** Deletes every key under `prefix` (SCAN + UNLINK) — never anything else. */
export async function deletePrefix(url, prefix) {
  const { createClient } = await import('redis');
  const client = createClient({ url });
  client.on('error', () => {});
  try {
    await client.connect();
    const batch = [];
    for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
      const list = Array.isArray(keys) ? keys : [keys];
      batch.push(...list);
      if (batch.length >= 500) await client.unlink(batch.splice(0));
    }
    if (batch.length > 0) await client.unlink(batch);
  } finally {
    await client.quit().catch(() => {});
  }
}
