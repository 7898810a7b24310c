/**
 * The full stack on Express 5 under `node:cluster` without Redis (issue 16): the primary
 * runs `clusterPrimary({ workers: CLUSTER_WORKERS })` from `perfstack/cluster`, each worker
 * the same app as perfstack-express.js (rate limits decided by the IPC store in the primary).
 * Not pinned to one core (`unpinned` in the registry): compare `stack-cluster-2` with
 * `stack-cluster-1` for the scaling on 2 cores. Prints `READY <port>` once every worker listens.
 */
import cluster from 'node:cluster';
import http from 'node:http';
import { expressApp } from '../lib/apps.js';
import { requireExports } from '../lib/perfstack.js';
import { buildStack } from '../lib/stack-options.js';

const workers = Number(process.env.CLUSTER_WORKERS ?? 2);

if (cluster.isPrimary) {
  const { clusterPrimary } = await requireExports('perfstack/cluster', ['clusterPrimary']);
  // BENCH_METRICS_INTERVAL (instructions.js: 1 h): under valgrind the primary's 5-second
  // gathering of every worker's registry would land on a handful of requests.
  const metricsInterval = Number(process.env.BENCH_METRICS_INTERVAL) || 5000;
  const primary = clusterPrimary({ workers, metricsInterval, logger: { warn() {}, error() {} } });
  let listening = 0;
  cluster.on('listening', (_worker, address) => {
    if (++listening === workers) process.stdout.write(`READY ${address.port}\n`);
  });
  const stop = () => {
    primary.close().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const { performanceStack, cache } = await requireExports('perfstack', ['performanceStack', 'cache']);
  const stack = await buildStack(performanceStack);
  const server = http.createServer(await expressApp({ use: [stack], cacheRoute: [cache({ ttl: '5m' })] }));
  server.keepAliveTimeout = 65_000;
  // The port comes from the primary (PORT, or 0: one random port shared by every worker).
  server.listen(Number(process.env.PORT ?? 0), '127.0.0.1');
  process.on('SIGTERM', () => {
    server.close();
    stack.close?.();
    setTimeout(() => process.exit(0), 200).unref();
  });
}
