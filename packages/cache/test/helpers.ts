/** Shared bits of the cache tests. */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type ResponseCache, responseCache } from '@perfstack/cache';
import { createSharedRedis, type SharedRedis, silentLogger } from '@perfstack/core';
import { afterAll, afterEach, beforeAll } from 'vitest';
import { listen, type TestServer, waitFor } from '../../../test/helpers/http.js';
import { type RedisServerHandle, startRedisServer } from '../../../test/helpers/redis.js';

export { listen, request, waitFor } from '../../../test/helpers/http.js';

/** A clock the tests move by hand (the cache's `now` option). */
export function manualClock(start = Date.UTC(2026, 0, 1)) {
  let now = start;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

/** Closes every server made through {@link track}. */
export function serverTracker() {
  const servers: TestServer[] = [];
  return {
    async listen(listener: Parameters<typeof listen>[0]) {
      const server = await listen(listener);
      servers.push(server);
      return server;
    },
    async closeAll() {
      await Promise.all(servers.splice(0).map((s) => s.close()));
    },
  };
}

/**
 * Quiet caches made for one test, closed (with the test's servers) after each test:
 * `const { make } = cacheTracker(servers)` registers the afterEach itself.
 */
export function cacheTracker(servers: ReturnType<typeof serverTracker>) {
  const caches: ResponseCache[] = [];
  afterEach(async () => {
    await servers.closeAll();
    await Promise.all(caches.splice(0).map((c) => c.close()));
  });
  return {
    make(options: Parameters<typeof responseCache>[0] = {}): ResponseCache {
      const c = responseCache({ logger: silentLogger, ...options });
      caches.push(c);
      return c;
    },
  };
}

/** A child process serving an app (a fixture that prints `{"port": n, ...}` once listening). */
export interface SpawnedInstance {
  readonly port: number;
  /** What the warm start loaded before it listened. */
  readonly warmed: number;
  readonly child: ChildProcess;
}

/**
 * A starter of child processes running `fixture` (a file under test/fixtures) with `env`:
 * each call starts one and resolves once it prints its first line. `cleanup` receives the
 * function that kills those still running (the test calls it when it ends).
 */
export function instanceStarter(
  fixture: string,
  env: Record<string, string>,
  cleanup: (kill: () => Promise<void>) => void,
): () => Promise<SpawnedInstance> {
  const children: ChildProcess[] = [];
  cleanup(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  });
  const file = fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url));
  return () =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [file], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      let buffer = '';
      child.stdout?.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const nl = buffer.indexOf('\n');
        if (nl !== -1) resolve({ ...(JSON.parse(buffer.slice(0, nl)) as { port: number; warmed: number }), child });
      });
      child.on('exit', (code) => reject(new Error(`instance exited with ${code}`)));
    });
}

/** `INFO commandstats` of the server `redis` is on, as { command: calls }. */
export async function commandCalls(redis: SharedRedis): Promise<Record<string, number>> {
  const text = String(await redis.client.sendCommand(['INFO', 'commandstats']));
  const out: Record<string, number> = {};
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[match[1] as string] = Number(match[2]);
  return out;
}

/**
 * A redis-server of this test file's own (free port, no persistence: its command counts
 * are the file's alone), started before its tests and stopped after, with an admin
 * connection. Read `server` and `admin` inside tests.
 */
export function privateRedis(): { readonly server: RedisServerHandle; readonly admin: SharedRedis } {
  let server: RedisServerHandle | undefined;
  let admin: SharedRedis | undefined;
  beforeAll(async () => {
    server = await startRedisServer();
    const connection = createSharedRedis({ url: server.url, logger: silentLogger });
    admin = connection;
    await waitFor(() => connection.isUp, 5000);
  });
  afterAll(async () => {
    await admin?.close();
    await server?.stop();
  });
  return {
    get server() {
      if (server === undefined) throw new Error('privateRedis(): read server inside a test');
      return server;
    },
    get admin() {
      if (admin === undefined) throw new Error('privateRedis(): read admin inside a test');
      return admin;
    },
  };
}
