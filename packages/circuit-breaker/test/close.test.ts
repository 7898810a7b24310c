/**
 * Nothing a breaker creates keeps the process alive (ARCHITECTURE.md rule 9): a child process
 * with a middleware whose sampler runs, and an outbound breaker with a pending time budget
 * and a pending retry delay, exits by itself. The child runs the built output, so the test
 * builds this package first (incremental, quick when up to date).
 */
import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const built = fileURLToPath(new URL('../dist/index.js', import.meta.url));

beforeAll(() => {
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-b', 'packages/circuit-breaker'], {
    cwd: root,
    stdio: 'ignore',
  });
}, 60_000);

describe('handles', () => {
  it('a process with a sampling middleware, a pending time budget and a pending retry exits by itself', async () => {
    const script = `
      const { circuitBreaker, createBreaker } = await import(${JSON.stringify(built)});
      const breaker = circuitBreaker({ timeout: '1h', overload: { sampleInterval: '10ms' } });
      const outbound = createBreaker({ timeout: '1h', retry: { maxAttempts: 3, initialDelay: '1h', maxDelay: '1h' }, random: () => 0.9 });
      outbound.execute(() => new Promise(() => {})).catch(() => {});
      outbound.execute(() => Promise.reject(new Error('retry later'))).catch(() => {});
      globalThis.kept = breaker;
      setTimeout(() => console.log('started'), 50);
    `;
    const output = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--input-type=module', '-e', script],
        { timeout: 10_000, cwd: fileURLToPath(new URL('..', import.meta.url)) },
        (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)),
      );
    });
    expect(output.trim()).toBe('started');
  });
});
