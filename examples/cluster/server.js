/**
 * The Express catalog on every core with `node:cluster`, no Redis: `clusterPrimary()` in the
 * primary, the unchanged app in each worker. Rate limits are exact across workers (one
 * store in the primary), `stack.cache.invalidate()` reaches every worker, `/metrics` is the
 * whole machine's and `/health` lists every worker.
 *
 *   pnpm demo:cluster            # one worker per core
 *   WORKERS=4 pnpm demo:cluster
 *
 * With REDIS_URL set, Redis stays the source of truth (as with several machines).
 */
import cluster from 'node:cluster';
import { handleShutdown } from '@perfstack/example-catalog';
import { createApp } from '@perfstack/example-express-api/app.js';
import { clusterPrimary } from 'perfstack/cluster';

const port = Number(process.env.PORT ?? 3000);

if (cluster.isPrimary) {
  const primary = clusterPrimary(process.env.WORKERS ? { workers: Number(process.env.WORKERS) } : {});
  console.log(`perfstack cluster example: primary ${process.pid}, forking workers`);
  console.log(`  http://localhost:${port}   dashboard: /dashboard   metrics: /metrics   health: /health`);
  const stop = async () => {
    await primary.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
} else {
  const { app, stack } = createApp();
  const server = app.listen(port, () => {
    console.log(`  worker ${cluster.worker?.id} (pid ${process.pid}) ready`);
  });
  handleShutdown(server, stack);
}
