/**
 * The fleet view: with a shared Redis, every instance publishes a summary of its snapshot
 * on one channel every `fleetInterval` (2 s), and every instance keeps the latest summary
 * of each peer. A peer not heard from for `fleetTimeout` (10 s) drops out. Nothing is
 * stored in Redis, so a crashed instance leaves nothing behind.
 *
 * Messages are validated field by field (another process wrote them) and the number of
 * peers kept is capped, so memory stays bounded whatever arrives on the channel.
 */
import type { Disposable, OnceLogger } from '@perfstack/core';
import type { FleetBus } from './options.js';
import { type DashboardSnapshot, type FleetFigures, type InstanceSummary, summarize, totalsOf } from './snapshot.js';

/** The channel, under the shared connection's key prefix. */
export const FLEET_CHANNEL = 'dashboard:fleet';

/** Most peers kept at once. */
export const MAX_PEERS = 256;

/** Settings for {@link Fleet}. */
export interface FleetSettings {
  /** Redis pub/sub, or the `node:cluster` channel (`perfstack/cluster`). */
  readonly redis: FleetBus;
  readonly instanceId: string;
  /** ms between publications. */
  readonly interval: number;
  /** ms after which a silent peer drops out. */
  readonly timeout: number;
  readonly now: () => number;
  readonly log: OnceLogger;
  /** Builds this instance's current snapshot (without fleet). */
  readonly snapshot: () => DashboardSnapshot;
}

/** Publishes this instance and tracks its peers. */
export class Fleet {
  readonly #settings: FleetSettings;
  readonly #peers = new Map<string, InstanceSummary>();
  #timer: NodeJS.Timeout | undefined;
  #subscription: Promise<Disposable | undefined> | undefined;
  #closed = false;

  constructor(settings: FleetSettings) {
    this.#settings = settings;
  }

  /** Subscribes, publishes once, then every interval. */
  start(): void {
    if (this.#timer !== undefined || this.#closed) return;
    const { redis, log } = this.#settings;
    this.#subscription = redis
      .subscribe(FLEET_CHANNEL, (message) => this.receive(message))
      .then(
        (disposable) => {
          if (this.#closed) {
            disposable.dispose();
            return undefined;
          }
          this.publish();
          return disposable;
        },
        (error: unknown) => {
          log.errorOnce(
            'DASHBOARD_FLEET_SUBSCRIBE',
            'could not subscribe to the fleet channel; fleet view limited to this instance',
            {
              error: error instanceof Error ? error.message : String(error),
            },
          );
          return undefined;
        },
      );
    this.#timer = setInterval(() => this.publish(), this.#settings.interval);
    this.#timer.unref();
  }

  /** Publishes this instance's summary now (skipped while Redis is down). */
  publish(): void {
    const { redis, log, instanceId } = this.#settings;
    if (this.#closed || !redis.isUp) return;
    let message: string;
    try {
      const summary = summarize(this.#settings.snapshot(), false, 0);
      message = JSON.stringify({ v: 1, instance: { ...summary, id: instanceId } });
    } catch (error) {
      log.errorOnce('DASHBOARD_FLEET_SNAPSHOT', 'could not build the snapshot to publish', { error: String(error) });
      return;
    }
    redis.publish(FLEET_CHANNEL, message).then(
      () => log.reset('DASHBOARD_FLEET_PUBLISH'),
      (error: unknown) =>
        log.errorOnce('DASHBOARD_FLEET_PUBLISH', 'could not publish to the fleet channel', {
          error: error instanceof Error ? error.message : String(error),
        }),
    );
  }

  /** Takes one message from the channel; anything malformed is dropped. */
  receive(message: string): void {
    const summary = parseMessage(message, this.#settings.now());
    if (summary === undefined || summary.id === this.#settings.instanceId) return;
    this.#prune();
    if (!this.#peers.has(summary.id) && this.#peers.size >= MAX_PEERS) {
      this.#settings.log.errorOnce(
        'DASHBOARD_FLEET_FULL',
        `more than ${MAX_PEERS} instances on the fleet channel; extra ones are not shown`,
      );
      return;
    }
    this.#peers.set(summary.id, summary);
  }

  #prune(): void {
    const oldest = this.#settings.now() - this.#settings.timeout;
    for (const [id, peer] of this.#peers) if (peer.lastSeen < oldest) this.#peers.delete(id);
  }

  /** The fleet as the snapshot shows it: this instance first, then peers by id. */
  figures(self: DashboardSnapshot): FleetFigures {
    this.#prune();
    const now = this.#settings.now();
    const peers = [...this.#peers.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const instances = [summarize(self, true, now), ...peers];
    return { instances, totals: totalsOf(instances), connected: this.#settings.redis.isUp };
  }

  /** Stops publishing and unsubscribes. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    // Not awaited: while Redis has never answered, the subscription stays pending for as
    // long as the client keeps reconnecting. Its handler sees #closed and disposes itself.
    void this.#subscription?.then((subscription) => subscription?.dispose());
    this.#peers.clear();
  }
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0;
}

function obj(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/**
 * Parses and validates one fleet message.
 *
 * @param message the raw text from the channel
 * @param receivedAt this instance's clock
 * @returns a clean summary, or `undefined` when the message is not one
 */
export function parseMessage(message: string, receivedAt: number): InstanceSummary | undefined {
  if (message.length > 64 * 1024) return undefined;
  let data: unknown;
  try {
    data = JSON.parse(message);
  } catch {
    return undefined;
  }
  const envelope = obj(data);
  if (envelope.v !== 1) return undefined;
  const i = obj(envelope.instance);
  if (typeof i.id !== 'string' || i.id.length === 0 || i.id.length > 200) return undefined;
  const requests = obj(i.requests);
  const latency = obj(i.latency);
  const cache = i.cache === null ? null : obj(i.cache);
  const rateLimit = i.rateLimit === null ? null : obj(i.rateLimit);
  const breakers = obj(i.breakers);
  const proc = obj(i.process);
  return {
    id: i.id,
    self: false,
    at: num(i.at),
    lastSeen: receivedAt,
    requests: {
      total: num(requests.total),
      rps: num(requests.rps),
      errorRate: Math.min(1, num(requests.errorRate)),
      inFlight: num(requests.inFlight),
    },
    latency: { p50: num(latency.p50), p95: num(latency.p95), p99: num(latency.p99) },
    cache: cache
      ? { hits: num(cache.hits), misses: num(cache.misses), hitRatio: Math.min(1, num(cache.hitRatio)) }
      : null,
    rateLimit: rateLimit ? { blocked: num(rateLimit.blocked) } : null,
    breakers: { open: num(breakers.open), total: num(breakers.total) },
    process: {
      rssBytes: num(proc.rssBytes),
      heapUsedBytes: num(proc.heapUsedBytes),
      cpuPercent: num(proc.cpuPercent),
      eventLoopDelayP99Ms: num(proc.eventLoopDelayP99Ms),
    },
    alerts: num(i.alerts),
  };
}
