/**
 * Real Redis for tests, never a mock.
 *
 * - {@link redisUrl}: a Redis to share (REDIS_URL, else 127.0.0.1:6379 if it answers,
 *   else a private `redis-server` this helper starts). Tests isolate themselves with a
 *   unique key prefix ({@link uniquePrefix}) and delete their keys ({@link cleanPrefix}).
 * - {@link startRedisServer}: a private `redis-server` on a free port that a test may
 *   stop, restart, pause (SIGSTOP) and resume — for fault tests.
 *
 * When CI=true and no Redis can be had, these throw: a Redis test never silently skips.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { createSharedRedis, silentLogger } from '@perfstack/core';

/** Finds a free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves true when a Redis answers PING at host:port within `timeout` ms. */
export function pingRedis(port: number, host = '127.0.0.1', timeout = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeout, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (data) => done(data.toString().startsWith('+PONG')));
  });
}

/** True when the `redis-server` binary is on PATH. */
export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** A private Redis server a test controls. */
export interface RedisServerHandle {
  readonly port: number;
  readonly url: string;
  /** Stops the server (SIGTERM, waits for exit). */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  start(): Promise<void>;
  /** SIGSTOP: the server keeps its sockets but answers nothing (a slow Redis). */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
}

/** Starts `redis-server` on a free port with no persistence, and waits until it answers. */
export async function startRedisServer(extraArgs: readonly string[] = []): Promise<RedisServerHandle> {
  if (!hasRedisServer()) {
    throw new Error('redis-server is not installed: install it (apt-get install redis-server) to run the Redis tests');
  }
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--daemonize',
        'no',
        ...extraArgs,
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      if (await pingRedis(port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server on port ${port} did not start`);
  };
  const stop = async () => {
    const proc = child;
    child = undefined;
    if (!proc || proc.exitCode !== null) return;
    proc.kill('SIGCONT');
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
  };
}

let shared: Promise<string> | undefined;
let sharedServer: RedisServerHandle | undefined;

/** A Redis URL to share between tests (see the module comment). */
export function redisUrl(): Promise<string> {
  shared ??= (async () => {
    if (process.env.REDIS_URL) return process.env.REDIS_URL;
    if (await pingRedis(6379)) return 'redis://127.0.0.1:6379';
    if (hasRedisServer()) {
      sharedServer = await startRedisServer();
      return sharedServer.url;
    }
    throw new Error('No Redis reachable (REDIS_URL, 127.0.0.1:6379) and no redis-server binary to start one');
  })();
  return shared;
}

/** Stops the private shared server, if this helper started one. */
export async function stopSharedRedis(): Promise<void> {
  await sharedServer?.stop();
}

/** A key prefix no other test run uses: `perfstack-test:<random>:`. */
export function uniquePrefix(label = 't'): string {
  return `perfstack-test:${label}:${randomBytes(6).toString('hex')}:`;
}

/** Deletes every key under `prefix` at `url`. */
export async function cleanPrefix(url: string, prefix: string): Promise<void> {
  const redis = createSharedRedis({ url, keyPrefix: '', logger: silentLogger, commandTimeout: 5000 });
  await redis.connect();
  const client = redis.client;
  try {
    let cursor = '0';
    do {
      const reply = await client.scan(cursor, { MATCH: `${prefix}*`, COUNT: 1000 });
      cursor = String(reply.cursor);
      if (reply.keys.length > 0) await client.del(reply.keys);
    } while (cursor !== '0');
  } finally {
    await redis.close();
  }
}
