/**
 * `pnpm demo:nestjs` runs the built NestJS example (examples/nestjs-api/dist/server.js): it
 * starts as its own process from the built packages, on Nest's Express adapter and on its
 * Fastify adapter (`ADAPTER=fastify`), answers through the stack, and exits 0 on SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { request, waitFor } from '../helpers/http.js';
import { freePort } from '../helpers/redis.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
let child: ChildProcess | undefined;
afterEach(() => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = undefined;
});

describe.each([
  ['express', 'Express'],
  ['fastify', 'Fastify'],
])('examples/nestjs-api (ADAPTER=%s)', (adapter, title) => {
  it('starts from the built packages, answers through the stack, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), ADAPTER: adapter };
    delete env.REDIS_URL;
    child = spawn(process.execPath, ['examples/nestjs-api/dist/server.js'], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    await waitFor(() => output.includes(`http://localhost:${port}`), 15_000);
    expect(output).toContain(`perfstack example (NestJS on ${title}) on http://localhost:${port}`);
    const url = `http://127.0.0.1:${port}`;
    const first = await request(`${url}/products`);
    expect(first.status).toBe(200);
    expect(first.json()).toHaveLength(5);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['x-content-type-options']).toBe('nosniff');
    expect(first.headers['ratelimit-policy']).toBe('"300-in-1min"; q=300; w=60');
    const second = await request(`${url}/products`);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.text).toBe(first.text);
    const missing = await request(`${url}/products/99`);
    expect(missing.status).toBe(404);
    expect(missing.json()).toEqual({ error: 'not found' });
    expect((await request(`${url}/health`)).json()).toMatchObject({ status: 'ok' });
    const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toContain('SIGTERM received: closing');
  });
});
