/**
 * `perfstack/cluster`: one machine, many cores, no Redis. Call {@link clusterPrimary} in
 * the `node:cluster` primary; every worker's `performanceStack()` then finds it by itself.
 *
 * ```js
 * import cluster from 'node:cluster';
 * import { clusterPrimary } from 'perfstack/cluster';
 * if (cluster.isPrimary) clusterPrimary({ workers: 4 });
 * else startServer(); // app.use(performanceStack()) as usual
 * ```
 *
 * What the primary does (the workers' half is `cluster-worker.ts`):
 * - **Rate limits**: one {@link ClusterStoreServer} (memory stores, one per limiter) decides
 *   for every worker — exact across workers, and across a worker's death (the counts live in
 *   the primary). Workers batch their requests per event-loop turn; the primary answers each
 *   batch with one message.
 * - **Broadcasts** (cache invalidations and tag purges, the dashboard's fleet view) are
 *   relayed to every other worker the moment they arrive — no batching, no timer.
 * - **`/metrics`**: a scrape on any worker asks the primary, which gathers every worker's
 *   registry (`getMetricsAsJSON`) and aggregates them with prom-client's
 *   `AggregatorRegistry.aggregate` (counters and histograms summed). The counters of a worker
 *   that died are kept as of the last time they were gathered (every scrape, and every
 *   `metricsInterval`), so a machine-wide counter does not drop when a worker is replaced.
 * - **`/health` and the dashboard**: the primary sends every worker the roster of live
 *   workers once a second; `/health` has a `cluster` check listing them.
 * - **Workers**: forks `workers` of them and replaces any that exits (unless closing).
 *
 * With Redis configured (`REDIS_URL` / `redis`), Redis stays the source of truth for rate
 * limits, the cache and invalidations; the primary still aggregates `/metrics` and `/health`.
 *
 * PM2 cluster mode runs its own primary (no app code there): use Redis with PM2, or run
 * `node:cluster` yourself with this helper.
 */

import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { CLUSTER_ENV, type PerfstackLogger } from '@perfstack/core';
import { ClusterHub, type HubPeer } from './cluster-hub.js';

export { CLUSTER_ENV } from '@perfstack/core';
export type { ClusterWorkerInfo } from './cluster-worker.js';

/** Options of {@link clusterPrimary}. */
export interface ClusterPrimaryOptions {
  /** Workers to fork (`0`: fork none, the app forks its own). @default os.availableParallelism() */
  readonly workers?: number;
  /** Fork a replacement when a worker exits. @default true */
  readonly respawn?: boolean;
  /** ms between gathering every worker's metrics (kept for workers that die). @default 5000 */
  readonly metricsInterval?: number;
  /** Where problems are reported. @default console */
  readonly logger?: PerfstackLogger;
}

/** The running primary. */
export interface ClusterPrimary {
  /** The live workers (the roster every worker's `/health` shows). */
  workers(): Array<{ id: number; pid: number; lastSeenMs: number; rss: number; heapUsed: number }>;
  /** The machine-wide metrics, as a worker's `/metrics` serves them. */
  metrics(): Promise<string>;
  /** Stops respawning, disconnects the workers and releases the primary's timers and stores. */
  close(): Promise<void>;
}

const PKG = 'perfstack/cluster';
/**
 * Sets up the `node:cluster` primary for perfstack (see the module comment).
 *
 * @param options see {@link ClusterPrimaryOptions}
 * @returns the running primary
 * @throws {Error} when called outside the primary
 * @example if (cluster.isPrimary) clusterPrimary({ workers: 4 }); else startServer();
 */
export function clusterPrimary(options: ClusterPrimaryOptions = {}): ClusterPrimary {
  if (!cluster.isPrimary) throw new Error(`${PKG}: clusterPrimary() must run in the cluster primary`);
  const known = ['workers', 'respawn', 'metricsInterval', 'logger'];
  for (const key of Object.keys(options)) {
    if (!known.includes(key))
      throw new TypeError(`${PKG}: unknown option "${key}" (expected one of ${known.join(', ')})`);
  }
  const count = options.workers ?? availableParallelism();
  if (!Number.isInteger(count) || count < 0 || count > 1024) {
    throw new RangeError(`${PKG}: option "workers" must be an integer from 0 to 1024, got ${String(options.workers)}`);
  }
  const respawn = options.respawn ?? true;
  const metricsInterval = options.metricsInterval ?? 5000;
  const logger = options.logger ?? console;

  // Workers forked from now on inherit these: they find the primary, and agree on one CSRF
  // token for the dashboard (a page served by one worker posts to another).
  process.env[CLUSTER_ENV] = '1';
  process.env.PERFSTACK_DASHBOARD_CSRF_SECRET ??= randomBytes(32).toString('base64url');

  const hub = new ClusterHub(metricsInterval);
  let closing = false;
  // A worker that is dying may still look connected: a failed send is dropped, not thrown.
  const ignore = () => {};
  const peers = new Map<number, HubPeer>();
  const peerOf = (worker: Worker): HubPeer => {
    let peer = peers.get(worker.id);
    if (peer === undefined) {
      peer = {
        id: worker.id,
        send: (message) => {
          if (worker.isConnected()) worker.send(message, ignore);
        },
      };
      peers.set(worker.id, peer);
      hub.join(peer);
    }
    return peer;
  };

  const onFork = (worker: Worker) => void peerOf(worker);
  const onMessage = (worker: Worker, message: unknown) => hub.handle(peerOf(worker), message);
  const onExit = (worker: Worker, code: number | null, signal: string | null) => {
    peers.delete(worker.id);
    const state = hub.leave(worker.id);
    if (closing || !respawn) return;
    logger.warn(
      `${PKG}: worker ${worker.id} (pid ${state?.pid ?? '?'}) exited (${signal ?? code}); forking a replacement`,
    );
    cluster.fork();
  };

  cluster.on('fork', onFork);
  cluster.on('message', onMessage);
  cluster.on('exit', onExit);

  for (let i = 0; i < count; i++) cluster.fork();

  return {
    workers: () => hub.roster(),
    metrics: () => hub.metrics(),
    async close() {
      closing = true;
      cluster.off('fork', onFork);
      cluster.off('message', onMessage);
      cluster.off('exit', onExit);
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      await Promise.all(
        workers.map(
          (w) =>
            new Promise<void>((resolve) => {
              if (w.isDead()) return resolve();
              w.once('exit', () => resolve());
              w.kill('SIGTERM');
            }),
        ),
      );
      hub.close();
    },
  };
}
