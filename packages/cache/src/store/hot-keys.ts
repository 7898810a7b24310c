/**
 * Warm starts, shared by the response cache and the data cache: read counts per stored
 * record, gathered in memory and added to a Redis sorted set in batches, and the start-up
 * step that loads the most read records into memory (L1) before or while the instance
 * serves.
 *
 * - `<prefix>cache-hot:<set>` (`responses`, `data`) — a sorted set, score = reads. One
 *   pipelined `MULTI` (`ZINCRBY` per key read since the last flush, then a trim to
 *   {@link MAX_HOT_KEYS}) per `accessFlushInterval`, never a round trip per read. It
 *   expires a week after the last flush, so a prefix nobody serves any more cleans itself up.
 * - At start: wait for the connection (at most {@link WARM_START_WAIT_MS}; requests are
 *   served meanwhile), `ZRANGE … REV` the `warmStart` most read keys, and let the cache
 *   read and load them. A read that overlapped an invalidation is read again (at most
 *   {@link WARM_START_ATTEMPTS} times), so an entry removed while it was being loaded is
 *   never warmed.
 */
import type { SharedRedis } from '@perfstack/core';
import { withTimeout } from './redis.js';

/** Most keys the read-count set keeps (the least read are trimmed at each flush). */
export const MAX_HOT_KEYS = 10_000;
/** Most keys whose reads wait for the next flush; past it, reads of new keys go uncounted until then. */
export const MAX_PENDING_KEYS = 50_000;
/** How long the read-count set lives without a flush. */
const HOT_TTL_MS = 7 * 24 * 3600 * 1000;
/** Longest a warm start waits for Redis to connect (serving goes on meanwhile). */
export const WARM_START_WAIT_MS = 5000;
/** Reads of the hottest records a warm start tries while invalidations keep overlapping them. */
export const WARM_START_ATTEMPTS = 3;

/** A record that counts its own reads (the data cache's entries): no map lookup per read. */
export interface CountedRecord {
  readonly key: string;
  reads: number;
}

/** Options of {@link HotKeys}. */
export interface HotKeysOptions {
  readonly redis: SharedRedis;
  /** The set's name under `<prefix>cache-hot:`. */
  readonly set: 'responses' | 'data';
  /** Time limit of each Redis call, ms. */
  readonly timeout: number;
  /** How often the counts are added to Redis, ms. */
  readonly flushInterval: number;
  /** A failed flush or read (the cache logs it once and tells the connection). */
  readonly onError: (error: unknown) => void;
}

/** Read counts of one cache, batched into `<prefix>cache-hot:<set>`. */
export class HotKeys {
  readonly redis: SharedRedis;
  readonly #name: string;
  /** Told of a failed flush or read. */
  readonly onError: (error: unknown) => void;
  readonly #timeout: number;
  /** Records read since the last flush (their `reads` hold the count). */
  #records: CountedRecord[] = [];
  /** Keys read since the last flush, for callers without a counting record. */
  #counts = new Map<string, number>();
  #flushing: Promise<void> | undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(options: HotKeysOptions) {
    this.redis = options.redis;
    this.#name = `${options.redis.keyPrefix}cache-hot:${options.set}`;
    this.#timeout = options.timeout;
    this.onError = options.onError;
    this.#timer = setInterval(() => void this.flush(), options.flushInterval);
    this.#timer.unref();
  }

  /** The sorted set's Redis key (for tests and operators). */
  get name(): string {
    return this.#name;
  }

  /** Counts reads of a record whose `reads` just went from 0 to 1 (it keeps counting itself). */
  markRead(record: CountedRecord): void {
    if (this.#records.length < MAX_PENDING_KEYS) this.#records.push(record);
    else record.reads = 0;
  }

  /** Counts one read of `key`. */
  count(key: string): void {
    const counts = this.#counts;
    const known = counts.get(key);
    if (known !== undefined) counts.set(key, known + 1);
    else if (counts.size < MAX_PENDING_KEYS) counts.set(key, 1);
  }

  /** Adds the reads counted since the last flush to Redis (one `MULTI`). */
  flush(): Promise<void> {
    if (this.#flushing !== undefined) return this.#flushing;
    if (this.#records.length === 0 && this.#counts.size === 0) return Promise.resolve();
    const counts = this.#counts;
    for (const record of this.#records) {
      counts.set(record.key, (counts.get(record.key) ?? 0) + record.reads);
      record.reads = 0;
    }
    this.#records = [];
    this.#counts = new Map();
    if (!this.redis.isUp) return Promise.resolve();
    const multi = this.redis.client.multi();
    for (const [key, count] of counts) multi.zIncrBy(this.#name, count, key);
    multi.zRemRangeByRank(this.#name, 0, -(MAX_HOT_KEYS + 1));
    multi.pExpire(this.#name, HOT_TTL_MS);
    const flushing = withTimeout(multi.exec(), this.#timeout, 'ZINCRBY').then(
      () => {
        this.#flushing = undefined;
      },
      (error: unknown) => {
        this.#flushing = undefined;
        this.onError(error);
      },
    );
    this.#flushing = flushing;
    return flushing;
  }

  /** The `count` most read keys, most read first. */
  async hottest(count: number): Promise<string[]> {
    if (count <= 0) return [];
    const keys = await withTimeout(
      this.redis.client.zRange(this.#name, 0, count - 1, { REV: true }),
      this.#timeout * 4,
      'ZRANGE',
    );
    return keys.map(String);
  }

  /** Stops the timer and adds the last counts (they still rank the next start). */
  close(): Promise<void> {
    clearInterval(this.#timer);
    return this.flush();
  }
}

/** What a cache gives {@link warmStart}. */
export interface WarmStartSteps<T> {
  /** How many of the hottest records to load (0: none). */
  readonly count: number;
  /** Reads the records of these keys from Redis. */
  readonly read: (keys: readonly string[]) => Promise<T>;
  /** Loads what `read` returned into memory; returns how many entries it loaded. */
  readonly load: (records: T) => number;
  /** A number every invalidation changes: a read it overlapped is read again. */
  readonly generation: () => number;
  /** True once the cache is closed (nothing is loaded then). */
  readonly closed: () => boolean;
}

/**
 * Loads the hottest records into memory: waits for Redis up to {@link WARM_START_WAIT_MS}
 * (0 when it does not come up), takes the `count` most read keys and hands them to the
 * cache. Never rejects: a Redis failure is reported to `hot`'s `onError` and loads nothing.
 */
export async function warmStart<T>(hot: HotKeys, steps: WarmStartSteps<T>): Promise<number> {
  if (steps.count <= 0 || !(await whenUp(hot.redis, WARM_START_WAIT_MS))) return 0;
  try {
    const keys = await hot.hottest(steps.count);
    if (keys.length === 0) return 0;
    for (let attempt = 0; attempt < WARM_START_ATTEMPTS; attempt++) {
      const generation = steps.generation();
      const records = await steps.read(keys);
      if (steps.closed()) return 0;
      if (generation === steps.generation()) return steps.load(records);
    }
    return 0;
  } catch (error) {
    hot.onError(error);
    return 0;
  }
}

/** Resolves true once `redis` is up, or false after `ms`. */
export function whenUp(redis: SharedRedis, ms: number): Promise<boolean> {
  if (redis.isUp) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      subscription.dispose();
      resolve(false);
    }, ms);
    timer.unref();
    const subscription = redis.onStatusChange((status) => {
      if (status !== 'up') return;
      clearTimeout(timer);
      subscription.dispose();
      resolve(true);
    });
  });
}
