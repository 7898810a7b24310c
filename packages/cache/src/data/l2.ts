/**
 * The data cache's Redis side, on the stack's one shared connection and in the response
 * cache's key space, so that both caches share one tag index and one invalidation stream:
 *
 * - `cache::data:<namespace>:<key>` — one string per entry (see entry.ts), expiring when
 *   the entry can no longer be served (`PX` = end of its stale window).
 * - `cache-tag:<tag>` — the response cache's tag sets, which list data keys too: an
 *   invalidation by tag from either cache resolves and deletes both kinds of record.
 * - `cache-lock:data:<namespace>:<key>` — fill locks (the response cache's `SET NX PX`).
 * - `cache-hot:data` — the read counts a starting instance loads the hottest entries by
 *   (store/hot-keys.ts, shared with the response cache's `cache-hot:responses`).
 *
 * Every call has a time limit and fails instead of waiting (the caller treats it as a miss).
 */
import type { SharedRedis } from '@perfstack/core';
import { isClusterClient, RedisStore, withTimeout } from '../store/redis.js';
import { type DataEntry, decode } from './entry.js';
import type { Serializer } from './serializer.js';

/** The Redis (L2) side of the data cache. */
export class DataL2 {
  readonly redis: SharedRedis;
  /** The response cache's store over the same key space: tags, deletes, prefix scans and fill locks. */
  readonly store: RedisStore;
  readonly #timeout: number;

  constructor(redis: SharedRedis, timeout: number) {
    this.redis = redis;
    this.store = new RedisStore(redis, timeout);
    this.#timeout = timeout;
  }

  get available(): boolean {
    return this.redis.isUp;
  }

  get #cluster(): boolean {
    return isClusterClient(this.redis.client);
  }

  /** One entry: one `GET`. */
  async read(key: string, serializer: Serializer, refreshAhead: number): Promise<DataEntry | undefined> {
    const text = await withTimeout(this.redis.client.get(this.store.entryKey(key)), this.#timeout, 'GET');
    return typeof text === 'string' ? decode(key, text, serializer, refreshAhead) : undefined;
  }

  /** Many entries: one `MGET` (on a cluster, one `GET` per key, sent at once). */
  async readMany(
    keys: readonly string[],
    serializer: Serializer,
    refreshAhead: number,
  ): Promise<(DataEntry | undefined)[]> {
    if (keys.length === 0) return [];
    const client = this.redis.client;
    const names = keys.map((key) => this.store.entryKey(key));
    const texts = this.#cluster
      ? await withTimeout(Promise.all(names.map((name) => client.get(name))), this.#timeout, 'GET')
      : await withTimeout(client.mGet(names), this.#timeout, 'MGET');
    return keys.map((key, i) => {
      const text = texts[i];
      return typeof text === 'string' ? decode(key, text, serializer, refreshAhead) : undefined;
    });
  }

  /**
   * Writes entries and adds their keys to their tag sets, in one `MULTI` on one node (on a
   * cluster, one per entry, sent at once). Entries already past their stale window are skipped.
   */
  async write(entries: readonly DataEntry[], now: number): Promise<void> {
    const client = this.redis.client;
    const cluster = this.#cluster;
    let multi = client.multi();
    const work: Promise<unknown>[] = [];
    let queued = 0;
    for (const entry of entries) {
      const ttl = Math.ceil(entry.staleUntil - now);
      if (ttl <= 0) continue;
      multi.set(this.store.entryKey(entry.key), entry.encode(), { expiration: { type: 'PX', value: ttl } });
      queued++;
      for (const tag of entry.tags) {
        const name = `${this.redis.keyPrefix}cache-tag:${tag}`;
        const tagMulti = cluster ? client.multi() : multi;
        tagMulti.sAdd(name, entry.key);
        tagMulti.pExpire(name, ttl, 'GT');
        tagMulti.pExpire(name, ttl, 'NX');
        if (cluster) work.push(tagMulti.exec());
      }
      if (cluster) {
        work.push(multi.exec());
        multi = client.multi();
        queued = 0;
      }
    }
    if (queued > 0) work.push(multi.exec());
    if (work.length > 0) await withTimeout(Promise.all(work), this.#timeout, 'SET');
  }
}
