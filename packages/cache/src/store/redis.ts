/**
 * L2: the Redis store, on the stack's one shared connection. Entries go through Keyv
 * (@keyv/redis), one record per URL holding its variants; tag sets, request-collapsing
 * locks and the invalidation channel use the same client directly, because Keyv is a
 * key-value API and has no sets, `SET NX` or pub/sub.
 *
 * Every call has a time limit ({@link RedisStore} `timeout`) and fails instead of
 * waiting; callers treat a failure as a miss (reads) or skip (writes). While the
 * connection is down, callers do not call at all ({@link RedisStore.available}).
 */
import type { Disposable, SharedRedis } from '@perfstack/core';
import type { Keyv } from 'keyv';
import { deserializeVariants, type Entry, serializeVariants } from '../entry.js';
import { CacheStoreError } from '../errors.js';

/** A message on the invalidation channel. */
export type CacheEvent =
  | { readonly from: string; readonly op: 'invalidate'; readonly keys: readonly string[] }
  | { readonly from: string; readonly op: 'stored'; readonly key: string };

const CHANNEL = 'cache:events';

/** Runs `work` with a time limit. */
export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new CacheStoreError(`Redis ${what} took longer than ${ms}ms`)), ms);
    timer.unref();
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error instanceof CacheStoreError ? error : new CacheStoreError(`Redis ${what} failed`, error));
      },
    );
  });
}

/** Escapes glob characters for `SCAN MATCH`. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

/** The Redis (L2) store. */
export class RedisStore {
  readonly redis: SharedRedis;
  readonly #keyv: Keyv<string>;
  readonly #timeout: number;
  readonly #entryPrefix: string;
  readonly #tagPrefix: string;
  readonly #lockPrefix: string;

  constructor(redis: SharedRedis, timeout: number) {
    this.redis = redis;
    this.#timeout = timeout;
    this.#keyv = redis.keyv<string>('cache');
    this.#entryPrefix = `${redis.keyPrefix}cache::`;
    this.#tagPrefix = `${redis.keyPrefix}cache-tag:`;
    this.#lockPrefix = `${redis.keyPrefix}cache-lock:`;
  }

  /** True while Redis can be used. */
  get available(): boolean {
    return this.redis.isUp;
  }

  /** The Redis key of an entry record (for tests and operators). */
  entryKey(key: string): string {
    return `${this.#entryPrefix}${key}`;
  }

  /** Reads the variants of `key`. */
  async get(key: string): Promise<Entry[]> {
    const text = await withTimeout(this.#keyv.get(key), this.#timeout, 'GET');
    return deserializeVariants(text);
  }

  /** Writes the variants of `key` with a TTL, and adds the key to its tag sets. */
  async set(key: string, variants: readonly Entry[], ttl: number, tags: readonly string[]): Promise<void> {
    const work: Promise<unknown>[] = [this.#keyv.set(key, serializeVariants(variants), ttl)];
    if (tags.length > 0) {
      const multi = this.redis.client.multi();
      for (const tag of tags) {
        multi.sAdd(`${this.#tagPrefix}${tag}`, key);
        multi.pExpire(`${this.#tagPrefix}${tag}`, ttl, 'GT');
        // PEXPIRE GT leaves a set without TTL alone; give a new set one.
        multi.pExpire(`${this.#tagPrefix}${tag}`, ttl, 'NX');
      }
      work.push(multi.exec());
    }
    await withTimeout(Promise.all(work), this.#timeout, 'SET');
  }

  /** Deletes entry records; returns how many existed. */
  async delete(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    const removed = await withTimeout(
      this.redis.client.del(keys.map((key) => `${this.#entryPrefix}${key}`)),
      this.#timeout,
      'DEL',
    );
    return Number(removed);
  }

  /** The keys in these tag sets; the sets are deleted. */
  async takeTagged(tags: readonly string[]): Promise<string[]> {
    const keys = new Set<string>();
    for (const tag of tags) {
      const name = `${this.#tagPrefix}${tag}`;
      const [members] = (await withTimeout(
        this.redis.client.multi().sMembers(name).del(name).exec(),
        this.#timeout,
        'SMEMBERS',
      )) as unknown as [string[], number];
      for (const key of members ?? []) keys.add(key);
    }
    return [...keys];
  }

  /** Keys of stored records starting with `prefix` (SCAN: rare, bounded by the time limit per page). */
  async keysWithPrefix(prefix: string): Promise<string[]> {
    const out: string[] = [];
    let cursor = '0';
    do {
      const reply = await withTimeout(
        this.redis.client.scan(cursor, { MATCH: `${escapeGlob(this.#entryPrefix + prefix)}*`, COUNT: 1000 }),
        this.#timeout * 4,
        'SCAN',
      );
      cursor = String(reply.cursor);
      for (const key of reply.keys) out.push(String(key).slice(this.#entryPrefix.length));
    } while (cursor !== '0');
    return out;
  }

  /** Takes the fetch lock of `key` for `ttl` ms (`SET NX PX`); true when this instance holds it. */
  async lock(key: string, owner: string, ttl: number): Promise<boolean> {
    const reply = await withTimeout(
      this.redis.client.set(`${this.#lockPrefix}${key}`, owner, {
        condition: 'NX',
        expiration: { type: 'PX', value: ttl },
      }),
      this.#timeout,
      'SET NX',
    );
    return reply === 'OK';
  }

  /** Releases the fetch lock (best effort; it expires anyway). */
  async unlock(key: string): Promise<void> {
    await withTimeout(this.redis.client.del(`${this.#lockPrefix}${key}`), this.#timeout, 'DEL lock');
  }

  /** Tells the other instances. */
  async publish(event: CacheEvent): Promise<void> {
    await withTimeout(this.redis.publish(CHANNEL, JSON.stringify(event)), this.#timeout, 'PUBLISH');
  }

  /** Listens to the other instances. */
  subscribe(listener: (event: CacheEvent) => void): Promise<Disposable> {
    return this.redis.subscribe(CHANNEL, (message) => {
      let event: unknown;
      try {
        event = JSON.parse(message);
      } catch {
        return;
      }
      if (typeof event === 'object' && event !== null && typeof (event as { op?: unknown }).op === 'string') {
        listener(event as CacheEvent);
      }
    });
  }
}
