/**
 * The worker's half of `perfstack/cluster` (the primary's half is `clusterPrimary()` in
 * `cluster.ts`). `performanceStack()` calls {@link clusterWorkerParts} when it runs in a
 * worker of a primary that runs `clusterPrimary()`; outside one it returns `undefined` and
 * nothing changes.
 *
 * - Rate limits: the rate limiter picks the `'cluster'` store by itself (one memory store in
 *   the primary) unless Redis is configured — with Redis, Redis stays the source of truth.
 * - Cache invalidations and tag purges: `stack.cache.invalidate()` clears this worker, then
 *   broadcasts the selector; the primary relays it at once (no batching) to every other
 *   worker, which clears its own L1. With Redis, Redis pub/sub carries them as before.
 * - `/metrics`: the worker asks the primary, which gathers every worker's registry and
 *   aggregates them with prom-client's `AggregatorRegistry` — whichever worker answers the
 *   scrape, the counters are the whole machine's.
 * - `/health` gets a `cluster` check listing every worker (the primary's roster), and the
 *   dashboard's fleet view runs over the channel (the same view as with Redis).
 */
import type { ResponseCache } from '@perfstack/cache';
import {
  type ClusterChannel,
  clusterChannel,
  type HealthCheck,
  type HealthSource,
  type Registry,
} from '@perfstack/core';
import type { FleetBus } from '@perfstack/dashboard';

/** The broadcast channel cache invalidations travel on. */
export const CACHE_CHANNEL = 'cache:invalidate';

/** One worker as the primary's roster lists it. */
export interface ClusterWorkerInfo {
  readonly id: number;
  readonly pid: number;
  /** ms since the primary last heard from it. */
  readonly lastSeenMs: number;
  readonly rss: number;
  readonly heapUsed: number;
}

/** What `performanceStack()` plugs in when it runs in a perfstack cluster worker. */
export interface ClusterWorkerParts {
  readonly channel: ClusterChannel;
  /** `/metrics` source: the aggregate of every worker (a Registry look-alike for metricsHandler). */
  readonly metricsRegistry: Pick<Registry, 'contentType' | 'metrics'>;
  /** The `cluster` health check: every worker. */
  readonly health: HealthSource;
  /** The fleet view's transport (without Redis). */
  readonly fleetBus: FleetBus;
  /** Makes `cache.invalidate()` reach every worker (without Redis). */
  shareInvalidations(cache: ResponseCache): void;
  close(): void;
}

/** ms between this worker's reports to the primary. */
const REPORT_MS = 1000;

/**
 * The worker's parts, or `undefined` outside a perfstack cluster worker.
 *
 * @param registry the stack's registry (answered to the primary's metrics requests)
 */
export function clusterWorkerParts(registry: Registry): ClusterWorkerParts | undefined {
  const channel = clusterChannel();
  if (channel === undefined) return undefined;
  const disposables: Array<{ dispose(): void }> = [];
  let roster: ClusterWorkerInfo[] = [];
  let rosterAt = 0;
  disposables.push(
    channel.on('roster', (m) => {
      roster = Array.isArray(m.workers) ? (m.workers as ClusterWorkerInfo[]) : [];
      rosterAt = Date.now();
    }),
    // The primary gathers every registry for an aggregated scrape.
    channel.on('metrics-json', (m) => {
      registry.getMetricsAsJSON().then(
        (metrics) => channel.send({ t: 'metrics-json-r', rid: m.rid, metrics }),
        (error: unknown) => channel.send({ t: 'metrics-json-r', rid: m.rid, error: String(error) }),
      );
    }),
  );
  const report = () => {
    const memory = process.memoryUsage();
    channel.send({ t: 'hb', pid: process.pid, rss: memory.rss, heapUsed: memory.heapUsed });
  };
  report();
  const timer = setInterval(report, REPORT_MS);
  timer.unref();

  const fleetBus: FleetBus = {
    get isUp() {
      return channel.connected;
    },
    publish: async (ch: string, message: string) => channel.broadcast(`fleet:${ch}`, message),
    subscribe: async (ch: string, listener: (message: string) => void) => channel.subscribe(`fleet:${ch}`, listener),
  } as FleetBus;

  return {
    channel,
    metricsRegistry: {
      contentType: registry.contentType,
      metrics: () => channel.request<string>('metrics', {}, 10_000),
    } as Pick<Registry, 'contentType' | 'metrics'>,
    health: {
      health(): HealthCheck {
        const stale = Date.now() - rosterAt > 5 * REPORT_MS;
        if (!channel.connected || stale) {
          return {
            status: 'degraded',
            detail: 'the cluster primary is unreachable: limits and invalidations are local to this worker',
            worker: channel.workerId,
          };
        }
        return { status: 'ok', worker: channel.workerId, workers: roster.length, roster };
      },
    },
    fleetBus,
    shareInvalidations(cache: ResponseCache): void {
      const local = cache.invalidate.bind(cache);
      disposables.push(
        channel.subscribe(CACHE_CHANNEL, (message) => {
          let selector: Parameters<ResponseCache['invalidate']>[0];
          try {
            selector = JSON.parse(message);
          } catch {
            return;
          }
          // Applied here only: the worker that invalidated already told everyone.
          local(selector).catch(() => {});
        }),
      );
      cache.invalidate = (selector) => {
        // This worker's L1 is cleared synchronously inside the call; the others hear at once.
        const removed = local(selector);
        channel.broadcast(CACHE_CHANNEL, JSON.stringify(selector));
        return removed;
      };
    },
    close(): void {
      clearInterval(timer);
      for (const d of disposables.splice(0)) d.dispose();
    },
  };
}
