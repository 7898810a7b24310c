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

/** The part of a node-redis cluster client the store uses besides the ordinary commands. */
interface ClusterClient {
  readonly masters: readonly unknown[];
  nodeClient(node: unknown): Promise<RedisClient> | RedisClient;
}

type RedisClient = SharedRedis['client'];

/**
 * True for a node-redis cluster client (it routes commands by key and has no single
 * socket); the same test as @perfstack/rate-limit's store.
 */
export function isClusterClient(client: unknown): boolean {
  return (
    typeof client === 'object' &&
    client !== null &&
    typeof (client as { getRandomNode?: unknown }).getRandomNode === 'function' &&
    typeof (client as { nodeClient?: unknown }).nodeClient === 'function'
  );
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

  /** True when the shared connection is a Redis Cluster client. */
  get #cluster(): boolean {
    return isClusterClient(this.redis.client);
  }

  /**
   * Writes the variants of `key` with a TTL, and adds the key to its tag sets. On one
   * node, all tag sets go in one MULTI; on a cluster each tag set is its own key in its
   * own slot, so each gets its own MULTI (a MULTI over several slots is `CROSSSLOT`),
   * all sent at once: still one round trip of wall-clock time.
   */
  async set(key: string, variants: readonly Entry[], ttl: number, tags: readonly string[]): Promise<void> {
    const work: Promise<unknown>[] = [this.#keyv.set(key, serializeVariants(variants), ttl)];
    if (tags.length > 0) {
      const client = this.redis.client;
      if (this.#cluster) {
        for (const tag of tags) {
          const multi = client.multi();
          this.#tagOne(multi, tag, key, ttl);
          work.push(multi.exec());
        }
      } else {
        const multi = client.multi();
        for (const tag of tags) this.#tagOne(multi, tag, key, ttl);
        work.push(multi.exec());
      }
    }
    await withTimeout(Promise.all(work), this.#timeout, 'SET');
  }

  /** Queues the commands adding `key` to the set of `tag`. */
  #tagOne(multi: ReturnType<RedisClient['multi']>, tag: string, key: string, ttl: number): void {
    const name = `${this.#tagPrefix}${tag}`;
    multi.sAdd(name, key);
    multi.pExpire(name, ttl, 'GT');
    // PEXPIRE GT leaves a set without TTL alone; give a new set one.
    multi.pExpire(name, ttl, 'NX');
  }

  /**
   * Deletes entry records; returns how many existed. One `DEL` with every key on one
   * node; on a cluster (where a multi-key `DEL` is `CROSSSLOT`) one `DEL` per key, all
   * sent at once.
   */
  async delete(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    const client = this.redis.client;
    const names = keys.map((key) => `${this.#entryPrefix}${key}`);
    if (!this.#cluster) return Number(await withTimeout(client.del(names), this.#timeout, 'DEL'));
    const counts = await withTimeout(Promise.all(names.map((name) => client.del(name))), this.#timeout, 'DEL');
    let removed = 0;
    for (const count of counts) removed += Number(count);
    return removed;
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

  /**
   * Keys of stored records starting with `prefix` (SCAN: rare, bounded by the time limit
   * per page). A cluster keeps each key on one master only, so every master is scanned.
   */
  async keysWithPrefix(prefix: string): Promise<string[]> {
    const out: string[] = [];
    const client = this.redis.client;
    if (!this.#cluster) {
      await this.#scan(client, prefix, out);
      return out;
    }
    const cluster = client as unknown as ClusterClient;
    await Promise.all(
      cluster.masters.map(async (master) => {
        const node = await withTimeout(Promise.resolve(cluster.nodeClient(master)), this.#timeout, 'cluster node');
        await this.#scan(node, prefix, out);
      }),
    );
    return out;
  }

  /** SCANs one node for entry records starting with `prefix`, into `out`. */
  async #scan(node: RedisClient, prefix: string, out: string[]): Promise<void> {
    const match = `${escapeGlob(this.#entryPrefix + prefix)}*`;
    let cursor = '0';
    do {
      const reply = await withTimeout(node.scan(cursor, { MATCH: match, COUNT: 1000 }), this.#timeout * 4, 'SCAN');
      cursor = String(reply.cursor);
      for (const key of reply.keys) out.push(String(key).slice(this.#entryPrefix.length));
    } while (cursor !== '0');
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
