/**
 * Fleet behaviour with Redis, as the request stages call it (kept out of the stage files
 * so that they only call in): the flight and fill-lock name of a request (per variant),
 * the vary names each key is known to use, the requests polling L2 for a fill another
 * instance does, and the invalidation feed (store/invalidation-feed.ts).
 */
import type { IncomingMessage } from 'node:http';
import { LRUCache } from 'lru-cache';
import type { CacheEngine } from './engine.js';
import type { CacheFleetBus } from './options.js';
import { InvalidationFeed } from './store/invalidation-feed.js';
import { requestVariantId } from './store/store.js';

/** The bus channel of the cache's fleet messages (without Redis). */
export const BUS_CHANNEL = 'cache:fleet';

/** The per-instance fleet state the engine holds (`engine.fleet`). */
export class Fleet {
  /** The request headers each key's responses vary on, so misses collapse per variant. */
  readonly varyNames = new LRUCache<string, readonly string[]>({ max: 100_000 });
  /** Requests polling L2 for a key another instance fills; woken by its "stored" announcement. */
  readonly pollers = new Map<string, Set<() => void>>();
  /** The durable invalidation stream (with Redis). */
  readonly feed: InvalidationFeed | undefined;
  /** `serveMemoryWhenStalled: false` with Redis: L1 not served as fresh while the feed is stalled. */
  readonly distrustStalled: boolean;
  /** Without Redis, the `fleetBus` option: invalidations and "stored" hints to the other processes. */
  readonly bus: CacheFleetBus | undefined;

  constructor(feed: InvalidationFeed | undefined, serveMemoryWhenStalled: boolean, bus?: CacheFleetBus) {
    this.feed = feed;
    this.distrustStalled = feed !== undefined && !serveMemoryWhenStalled;
    this.bus = bus;
  }

  /**
   * With a bus: tells the other processes to invalidate (they apply it locally only). Every
   * successful unsafe request sends one (a process that started later cannot know which URLs
   * the others hold): one small message, no round trip.
   */
  share(keys: readonly string[], tags: readonly string[], prefix: string | undefined): void {
    this.bus?.publish(BUS_CHANNEL, JSON.stringify({ op: 'inv', keys, tags, prefix }));
  }

  /** True when L1 entries must not be served as fresh now (see {@link distrustStalled}). */
  get memoryUntrusted(): boolean {
    return this.distrustStalled && (this.feed as InvalidationFeed).stalled;
  }

  /**
   * The flight (and fleet lock) of a request: its key, plus its variant once the key's
   * responses are known to vary, so N variants of one URL fill in parallel.
   */
  flightId(key: string, req: IncomingMessage): string {
    const names = this.varyNames.get(key);
    if (names === undefined) return key;
    return `${key}\n${requestVariantId(names, req.headers)}`;
  }

  /** The L2 hash fields a request waiting on its variant reads, or undefined: all of them. */
  variantFields(key: string, req: IncomingMessage): string[] | undefined {
    const names = this.varyNames.get(key);
    return names === undefined ? undefined : [requestVariantId(names, req.headers), ''];
  }

  /** Remembers the request headers a key's responses vary on. */
  learnVary(key: string, names: readonly string[] | undefined): void {
    if (names !== undefined && names.length > 0) this.varyNames.set(key, names);
  }

  /** Registers a poll to run at once when `key` is announced stored; returns its removal. */
  onStored(key: string, poll: () => void): () => void {
    let waiting = this.pollers.get(key);
    if (waiting === undefined) {
      waiting = new Set();
      this.pollers.set(key, waiting);
    }
    waiting.add(poll);
    return () => {
      const set = this.pollers.get(key);
      set?.delete(poll);
      if (set?.size === 0) this.pollers.delete(key);
    };
  }

  /** Another instance stored `key`: learn its Vary and wake the requests polling for it. */
  stored(key: string, vary: readonly string[]): void {
    this.learnVary(key, vary);
    const waiting = this.pollers.get(key);
    if (waiting !== undefined) for (const poll of [...waiting]) poll();
  }
}

/** Makes the engine's fleet state; with Redis, starts the invalidation feed. */
export function createFleet(
  engine: CacheEngine,
  onInvalidate: (keys: readonly string[], tags: readonly string[], prefix: string | undefined) => void,
): Fleet {
  const config = engine.config;
  const l2 = engine.l2;
  const bus = config.fleetBus;
  if (bus !== undefined) {
    const fleet = new Fleet(undefined, true, bus);
    engine.disposables.push(
      bus.subscribe(BUS_CHANNEL, (text) => {
        let m: { op?: unknown; key?: unknown; keys?: unknown; tags?: unknown; prefix?: unknown };
        try {
          m = JSON.parse(text);
        } catch {
          return;
        }
        if (m.op === 'inv' && Array.isArray(m.keys) && Array.isArray(m.tags)) {
          onInvalidate(m.keys as string[], m.tags as string[], typeof m.prefix === 'string' ? m.prefix : undefined);
        }
      }),
    );
    return fleet;
  }
  if (config.redis === undefined || l2 === undefined) return new Fleet(undefined, true);
  // Invalidations missed while away come from the stream when Redis answers again (no L1 flush).
  const feed = new InvalidationFeed({
    redis: config.redis,
    store: l2,
    timeout: config.redisTimeout,
    onInvalidate: (op) => onInvalidate(op.keys, op.tags, op.prefix),
    onReset: () => {
      engine.generation++;
      engine.l1.clear();
    },
    onError: (error) => engine.storeError(error),
  });
  feed.start();
  return new Fleet(feed, config.serveMemoryWhenStalled);
}
