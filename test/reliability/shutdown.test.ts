/**
 * Graceful shutdown under load, in child processes on the built packages (`pnpm build`):
 * SIGTERM → `server.close()` + `stack.close()`: in-flight requests complete with 200,
 * new connections are refused, and the process exits 0 within a bound. Covers the Express
 * example's own SIGTERM handling and a full-stack fixture with a slow route.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { request, waitFor } from '../helpers/http.js';
import { freePort, type RedisServerHandle, startRedisServer } from '../helpers/redis.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const EXIT_BOUND_MS = 5000;

let child: ChildProcess | undefined;
let redis: RedisServerHandle | undefined;
afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  await redis?.stop();
  redis = undefined;
});

function exited(proc: ChildProcess): Promise<{ code: number | null; signal: string | null; at: number }> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      resolve({ code: proc.exitCode, signal: proc.signalCode, at: Date.now() });
      return;
    }
    proc.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() }));
  });
}

async function startFixture(env: Record<string, string>): Promise<{ port: number; proc: ChildProcess }> {
  const proc = spawn(process.execPath, [`${root}test/reliability/fixtures/stack-server.mjs`], {
    env: { ...process.env, PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  const line = await new Promise<string>((resolve, reject) => {
    proc.once('exit', (code) => reject(new Error(`fixture exited with ${code}`)));
    proc.stdout?.once('data', (data) => resolve(String(data)));
  });
  return { port: (JSON.parse(line) as { port: number }).port, proc };
}

function connectRefused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      res.resume();
      resolve(`answered ${res.statusCode}`);
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe('graceful shutdown', () => {
  it('full stack with Redis: slow in-flight requests finish with 200, new connections are refused, exit 0 in time', async () => {
    redis = await startRedisServer();
    const { port, proc } = await startFixture({ REDIS_URL: redis.url, SLOW_MS: '1500' });
    const base = `http://127.0.0.1:${port}`;
    // a cached entry and a keep-alive client, as under real load
    expect((await request(`${base}/hit`)).status).toBe(200);
    const inFlight = Array.from({ length: 8 }, () => request(`${base}/slow`, { timeout: 8000 }));
    await new Promise((r) => setTimeout(r, 400)); // all eight are inside the handler now
    const exit = exited(proc);
    const signalledAt = Date.now();
    proc.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 150));
    expect(await connectRefused(port)).toBe('ECONNREFUSED');
    const answers = await Promise.all(inFlight);
    expect(answers.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(answers.map((r) => r.json())).toEqual(Array(8).fill({ slow: true }));
    const { code, signal, at } = await exit;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(at - signalledAt).toBeLessThan(EXIT_BOUND_MS);
  });

  it('the Express example (examples/express-api/server.js) drains keep-alive load on SIGTERM and exits 0', async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, [`${root}examples/express-api/server.js`], {
      env: { ...process.env, PORT: String(port), REDIS_URL: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    await waitFor(async () => (await connectRefused(port)) === 'answered 200', 10_000, 50);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    const statuses: number[] = [];
    const errorsBefore: string[] = [];
    const errorsAfter: string[] = [];
    let signalledAt = 0;
    const worker = async (w: number) => {
      for (let i = 0; ; i++) {
        try {
          const res = await request(`http://127.0.0.1:${port}/products/${1 + ((w + i) % 5)}`, { agent, timeout: 5000 });
          statuses.push(res.status);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
          if (signalledAt === 0) errorsBefore.push(code);
          else errorsAfter.push(code);
          if (code === 'ECONNREFUSED') return; // the listener is gone: stop this loop
        }
      }
    };
    const workers = Promise.all(Array.from({ length: 10 }, (_, w) => worker(w)));
    await new Promise((r) => setTimeout(r, 1000));
    const exit = exited(proc);
    signalledAt = Date.now();
    proc.kill('SIGTERM');
    const { code, signal, at } = await exit;
    await workers;
    agent.destroy();
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(at - signalledAt).toBeLessThan(EXIT_BOUND_MS);
    expect(errorsBefore).toEqual([]);
    // every answer was a success (cached or not), none a 5xx from a half-closed stack
    expect(statuses.length).toBeGreaterThan(20);
    expect(new Set(statuses)).toEqual(new Set([200]));
    // after SIGTERM a request either was refused a connection or raced the closing of an idle
    // keep-alive socket (which HTTP clients retry) — never an error answer
    for (const e of errorsAfter) expect(['ECONNREFUSED', 'ECONNRESET', 'socket hang up']).toContain(e);
    expect(await connectRefused(port)).toBe('ECONNREFUSED');
  });
});
