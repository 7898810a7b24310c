/**
 * `pnpm demo:fastify` runs examples/fastify-api/server.js from the built packages: it starts as
 * its own process, answers through the stack (perfstack/fastify), and exits 0 on SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

describe('examples/fastify-api/server.js', () => {
  it('is what `pnpm demo:fastify` runs', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    expect(pkg.scripts['demo:fastify']).toBe('pnpm build && node examples/fastify-api/server.js');
  });

  it('starts from the built packages, answers through the stack, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), HOST: '127.0.0.1' };
    delete env.REDIS_URL;
    child = spawn(process.execPath, ['examples/fastify-api/server.js'], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (d) => (output += d));
    child.stderr?.on('data', (d) => (output += d));
    // Generous: on a loaded machine, loading Fastify and the stack takes seconds.
    await waitFor(() => output.includes(`http://localhost:${port}`), 25_000);
    const url = `http://127.0.0.1:${port}`;
    const first = await request(`${url}/products`);
    expect(first.status).toBe(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['x-content-type-options']).toBe('nosniff');
    expect(first.headers['ratelimit-policy']).toBe('"300-in-1min"; q=300; w=60');
    const hit = await request(`${url}/products`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.text).toBe(first.text);
    expect((await request(`${url}/health`)).json()).toMatchObject({ status: 'ok' });
    const exited = new Promise<number | null>((resolve) => child?.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(output).toContain('SIGTERM received: closing');
    // The access log is the stack's (Fastify's own logger is off): one line for the miss; the
    // hit is answered by the cache, in front of the logger, and /health is not logged.
    const lines = output.split('\n').filter((line) => line.startsWith('{'));
    expect(lines.map((line) => [JSON.parse(line).route, JSON.parse(line).res.statusCode])).toEqual([
      ['/products', 200],
    ]);
  }, 45_000);
});
