/**
 * The worker's half of `perfstack/cluster` (the hub's half is cluster-hub.ts: in the
 * `node:cluster` primary with `clusterPrimary()`, or a detached hub process in PM2 cluster
 * mode). `performanceStack()` calls {@link clusterWorkerParts}; outside a perfstack cluster
 * worker it returns `undefined` and nothing changes.
 *
 * - Rate limits: the rate limiter picks the `'cluster'` store by itself (one memory store in
 *   the hub) unless Redis is configured — with Redis, Redis stays the source of truth.
 * - Cache invalidations and tag purges (`stack.cache.invalidate()`, unsafe methods, the
 *   dashboard's purges): the cache's `fleetBus` is the channel; the hub relays them at once
 *   to every other worker, which clears its own L1. With Redis, Redis carries them as before.
 * - `/metrics`: the worker asks the hub, which gathers every worker's registry and
 *   aggregates them with prom-client's `AggregatorRegistry` — whichever worker answers the
 *   scrape, the counters are the whole machine's.
 * - `/health` gets a `cluster` check listing every worker (the hub's roster), and the
 *   dashboard's fleet view runs over the channel (the same view as with Redis).
 * - PM2 cluster mode: registers the hub launcher (cluster-hub-main.ts, started detached).
 */

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { CacheFleetBus } from '@perfstack/cache';
import {
  type ClusterChannel,
  clusterChannel,
  type HealthCheck,
  type HealthSource,
  type Registry,
  setHubLauncher,
} from '@perfstack/core';
import type { FleetBus } from '@perfstack/dashboard';
import type { SettingsStore } from './settings.js';

/** The hub process's script (built next to this file). */
const HUB_MAIN = fileURLToPath(new URL('./cluster-hub-main.js', import.meta.url));

/**
 * Starts a hub for `socketPath`, detached twice over: the script re-launches itself and
 * exits, so the hub is nobody's child — PM2 kills a stopped worker's process tree, and the
 * hub must outlive every worker. Losers of the election (the listen) exit at once.
 */
export function launchHub(socketPath: string): void {
  try {
    // argv cannot carry a NUL: a Linux abstract name goes as `@name` (as `ss` shows it).
    const arg = socketPath.startsWith('\0') ? `@${socketPath.slice(1)}` : socketPath;
    const child = spawn(process.execPath, [HUB_MAIN, '--detach', arg], {
      detached: true,
      stdio: 'ignore',
      windowsHide: true,
    });
    child.on('error', () => {});
    child.unref();
  } catch {
    // The worker retries (and limits locally meanwhile).
  }
}
setHubLauncher(launchHub);

/** One worker as the hub's roster lists it. */
export interface ClusterWorkerInfo {
  readonly id: number;
  readonly pid: number;
  /** ms since the hub last heard from it. */
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
  /** The cache's invalidation transport (without Redis). */
  readonly cacheBus: CacheFleetBus;
  /** Where runtime settings in force are kept for workers started later (without Redis): the primary or hub. */
  readonly settingsStore: SettingsStore;
  close(): void;
}

/** ms between this worker's reports to the hub. */
const REPORT_MS = 1000;

/**
 * The worker's parts, or `undefined` outside a perfstack cluster worker.
 *
 * @param registry the stack's registry (answered to the hub's metrics requests)
 */
export function clusterWorkerParts(registry: Registry): ClusterWorkerParts | undefined {
  const channel = clusterChannel();
  if (channel === undefined) return undefined;
  const disposables: Array<{ dispose(): void }> = [];
  let roster: ClusterWorkerInfo[] = [];
  let rosterAt = 0;
  let hubPid: number | undefined;
  const report = () => {
    const memory = process.memoryUsage();
    channel.send({ t: 'hb', worker: channel.workerId, pid: process.pid, rss: memory.rss, heapUsed: memory.heapUsed });
  };
  disposables.push(
    channel.on('roster', (m) => {
      roster = Array.isArray(m.workers) ? (m.workers as ClusterWorkerInfo[]) : [];
      rosterAt = Date.now();
      if (typeof m.hubPid === 'number') hubPid = m.hubPid;
    }),
    // The hub gathers every registry for an aggregated scrape.
    channel.on('metrics-json', (m) => {
      registry.getMetricsAsJSON().then(
        (metrics) => channel.send({ t: 'metrics-json-r', rid: m.rid, metrics }),
        (error: unknown) => channel.send({ t: 'metrics-json-r', rid: m.rid, error: String(error) }),
      );
    }),
    // A new hub (PM2: the old one died) learns who this is at once.
    channel.onConnect(report),
  );
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
        const where = channel.transport === 'hub' ? 'hub' : 'primary';
        const hub = channel.transport === 'hub' ? { hubPid } : {};
        if (!channel.connected || stale) {
          return {
            status: 'degraded',
            detail: `the cluster ${where} is unreachable: limits are a share (ceil(limit / ${channel.liveWorkers})) and invalidations local to this worker`,
            transport: channel.transport,
            worker: channel.workerId,
            ...hub,
          };
        }
        return {
          status: 'ok',
          transport: channel.transport,
          worker: channel.workerId,
          workers: roster.length,
          roster,
          ...hub,
        };
      },
    },
    fleetBus,
    cacheBus: {
      publish: (ch: string, message: string) => channel.broadcast(ch, message),
      subscribe: (ch: string, listener: (message: string) => void) => channel.subscribe(ch, listener),
    },
    settingsStore: {
      load: () => channel.request<Record<string, string>>('settings-load'),
      save: (set, removed) => channel.request<boolean>('settings-save', { set, removed }).then(() => undefined),
    },
    close(): void {
      clearInterval(timer);
      for (const d of disposables.splice(0)) d.dispose();
    },
  };
}
