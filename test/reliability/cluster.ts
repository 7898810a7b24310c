/**
 * A local three-node Redis Cluster for tests: three `redis-server --cluster-enabled yes`
 * processes on free ports, joined with `redis-cli --cluster create`, no replicas, no
 * persistence, config files in a temp dir that {@link RedisCluster.stop} deletes.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, pingRedis } from '../helpers/redis.js';

/** A running cluster. */
export interface RedisCluster {
  readonly ports: readonly number[];
  /** `redis://127.0.0.1:P` of each node. */
  readonly urls: readonly string[];
  stop(): Promise<void>;
}

/** True when both binaries are there. */
export function hasClusterTools(): boolean {
  return (
    spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0 &&
    spawnSync('redis-cli', ['--version'], { stdio: 'ignore' }).status === 0
  );
}

function info(port: number): string {
  return spawnSync('redis-cli', ['-p', String(port), 'cluster', 'info'], { encoding: 'utf8' }).stdout ?? '';
}

/** Starts the cluster and waits for `cluster_state:ok` on every node. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'perfstack-cluster-'));
  const ports: number[] = [];
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) {
              resolve();
              return;
            }
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) {
      let port = await freePort();
      // the cluster bus uses port + 10000: keep it below 65536 and free
      while (port + 10_000 > 65_535 || ports.includes(port)) port = await freePort();
      ports.push(port);
      children.push(
        spawn(
          'redis-server',
          [
            '--port',
            String(port),
            '--bind',
            '127.0.0.1',
            '--cluster-enabled',
            'yes',
            '--cluster-config-file',
            join(dir, `nodes-${port}.conf`),
            '--dir',
            dir,
            '--save',
            '',
            '--appendonly',
            'no',
            '--daemonize',
            'no',
          ],
          { stdio: 'ignore' },
        ),
      );
    }
    for (const port of ports) {
      const deadline = Date.now() + 5000;
      while (!(await pingRedis(port))) {
        if (Date.now() > deadline) throw new Error(`cluster node ${port} did not start`);
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    const create = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
    const deadline = Date.now() + 15_000;
    while (!ports.every((p) => info(p).includes('cluster_state:ok'))) {
      if (Date.now() > deadline) throw new Error('the cluster did not reach cluster_state:ok');
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { ports, urls: ports.map((p) => `redis://127.0.0.1:${p}`), stop };
}
