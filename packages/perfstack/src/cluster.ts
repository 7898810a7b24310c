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
import { AggregatorRegistry, CLUSTER_ENV, type ClusterMessage, type PerfstackLogger } from '@perfstack/core';
import { ClusterStoreServer } from '@perfstack/rate-limit';

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
const ROSTER_MS = 1000;

interface WorkerState {
  pid: number;
  lastSeen: number;
  rss: number;
  heapUsed: number;
  /** The last metrics gathered from it (prom-client's JSON form). */
  metrics: unknown[] | undefined;
}

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

  const store = new ClusterStoreServer();
  const states = new Map<number, WorkerState>();
  /** Counters and histograms of workers that died, as last gathered. */
  const retired: unknown[][] = [];
  const gathers = new Map<number, { pending: number; results: unknown[][]; done: () => void }>();
  let nextRid = 0;
  let closing = false;
  // Constructing one registers prom-client's cluster listeners (harmless: we gather ourselves).
  void AggregatorRegistry;

  // A worker that is dying may still look connected: a failed send is dropped, not thrown.
  const ignore = () => {};
  const send = (worker: Worker, message: ClusterMessage) => {
    if (worker.isConnected()) worker.send(message, ignore);
  };
  const live = () => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w?.isConnected() === true);

  /** Asks every live worker for its metrics and aggregates them with the retired ones. */
  const gather = (): Promise<string> =>
    new Promise<unknown[][]>((resolve) => {
      const rid = nextRid++;
      const workers = live();
      const entry = { pending: workers.length, results: [] as unknown[][], done: () => {} };
      const timer = setTimeout(() => finish(), 5000);
      const finish = () => {
        clearTimeout(timer);
        gathers.delete(rid);
        resolve(entry.results);
      };
      entry.done = finish;
      gathers.set(rid, entry);
      if (workers.length === 0) finish();
      for (const w of workers) send(w, { ps: 1, t: 'metrics-json', rid });
    }).then((results) => {
      const all = [...results, ...retired];
      if (all.length === 0) return '';
      return AggregatorRegistry.aggregate(all as never).metrics();
    });

  const onMessage = (worker: Worker, message: unknown) => {
    if (typeof message !== 'object' || message === null || (message as ClusterMessage).ps !== 1) return;
    const m = message as ClusterMessage;
    switch (m.t) {
      case 'rl':
      case 'rl-def':
      case 'rl-reset': {
        const answer = store.handle(m);
        if (answer !== undefined) send(worker, answer);
        return;
      }
      case 'bc':
        // Relayed at once to every other worker: invalidations must not wait for a tick.
        for (const w of live()) if (w !== worker) send(w, m);
        return;
      case 'hb': {
        const state = states.get(worker.id) ?? { pid: 0, lastSeen: 0, rss: 0, heapUsed: 0, metrics: undefined };
        state.pid = Number(m.pid);
        state.lastSeen = Date.now();
        state.rss = Number(m.rss);
        state.heapUsed = Number(m.heapUsed);
        states.set(worker.id, state);
        return;
      }
      case 'metrics-json-r': {
        const entry = gathers.get(m.rid as number);
        if (Array.isArray(m.metrics)) {
          const state = states.get(worker.id);
          if (state !== undefined) state.metrics = m.metrics as unknown[];
          entry?.results.push(m.metrics as unknown[]);
        }
        if (entry !== undefined && --entry.pending <= 0) entry.done();
        return;
      }
      case 'req':
        if (m.kind === 'metrics') {
          gather().then(
            (text) => send(worker, { ps: 1, t: 'res', id: m.id, value: text }),
            (error: unknown) => send(worker, { ps: 1, t: 'res', id: m.id, error: String(error) }),
          );
        } else {
          send(worker, { ps: 1, t: 'res', id: m.id, error: `unknown request "${String(m.kind)}"` });
        }
        return;
      default:
        return;
    }
  };

  const onExit = (worker: Worker, code: number | null, signal: string | null) => {
    const state = states.get(worker.id);
    states.delete(worker.id);
    // Keep what it counted: a machine-wide counter must not go down when a worker dies.
    const metrics = state?.metrics?.filter((metric) => {
      const type = (metric as { type?: string }).type;
      return type === 'counter' || type === 'histogram';
    });
    if (metrics !== undefined && metrics.length > 0) retired.push(metrics);
    if (closing || !respawn) return;
    logger.warn(
      `${PKG}: worker ${worker.id} (pid ${state?.pid ?? '?'}) exited (${signal ?? code}); forking a replacement`,
    );
    cluster.fork();
  };

  cluster.on('message', onMessage);
  cluster.on('exit', onExit);

  const roster = () => {
    const now = Date.now();
    return [...states.entries()]
      .filter(([id]) => cluster.workers?.[id]?.isConnected())
      .map(([id, s]) => ({ id, pid: s.pid, lastSeenMs: now - s.lastSeen, rss: s.rss, heapUsed: s.heapUsed }))
      .sort((a, b) => a.id - b.id);
  };
  const rosterTimer = setInterval(() => {
    const message: ClusterMessage = { ps: 1, t: 'roster', workers: roster() };
    for (const w of live()) send(w, message);
  }, ROSTER_MS);
  rosterTimer.unref();
  const metricsTimer = setInterval(() => void gather().catch(() => {}), metricsInterval);
  metricsTimer.unref();

  for (let i = 0; i < count; i++) cluster.fork();

  return {
    workers: roster,
    metrics: gather,
    async close() {
      closing = true;
      clearInterval(rosterTimer);
      clearInterval(metricsTimer);
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
      store.close();
    },
  };
}
