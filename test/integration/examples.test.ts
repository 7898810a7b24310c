/**
 * The README's demo commands run the built examples: each server starts as its own
 * process from the built packages (what `pnpm demo`, `demo:koa` and `demo:node` run),
 * answers through the stack, and exits cleanly on SIGTERM.
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

describe.each([['express-api'], ['koa-api'], ['node-http']])('examples/%s/server.js', (name) => {
  it('starts from the built packages, answers through the stack, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port) };
    delete env.REDIS_URL;
    child = spawn(process.execPath, [`examples/${name}/server.js`], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    await waitFor(() => output.includes(`http://localhost:${port}`), 10_000);
    const url = `http://127.0.0.1:${port}`;
    const first = await request(`${url}/products`);
    expect(first.status).toBe(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['x-content-type-options']).toBe('nosniff');
    expect((await request(`${url}/products`)).headers['x-cache']).toBe('HIT');
    expect((await request(`${url}/health`)).json()).toMatchObject({ status: 'ok' });
    const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toContain('SIGTERM received: closing');
  });
});
