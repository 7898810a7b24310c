/**
 * Starts a `node:cluster` fixture's primary without Redis (CI exports REDIS_URL for the Redis
 * tests, and the preset would pick it up) and waits for its first stdout line,
 * `{"control":N,"app":M}`, printed once every worker listens.
 */
import { type ChildProcess, spawn } from 'node:child_process';

export async function startClusterPrimary(
  fixture: string,
  workers: number,
): Promise<{ primary: ChildProcess; control: number; app: number }> {
  const { REDIS_URL: _redis, ...env } = process.env;
  const primary = spawn(process.execPath, [fixture], {
    env: { ...env, WORKERS: String(workers) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = await new Promise<{ control: number; app: number }>((resolve, reject) => {
    let buffer = '';
    primary.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const nl = buffer.indexOf('\n');
      if (nl !== -1) resolve(JSON.parse(buffer.slice(0, nl)));
    });
    primary.once('exit', (code) => reject(new Error(`cluster primary exited with ${code}`)));
  });
  return { primary, ...ready };
}
