/**
 * L2: the Redis store, on the stack's one shared connection, implementing
 * {@link CacheStore}. Layout under the stack's key prefix:
 *
 * - `cache::<key>` — one hash per URL, one field per variant (the field is the variant's
 *   vary names and values, `""` when the URL does not vary). Reading a URL is one `HGETALL`,
 *   writing a variant is one `MULTI` (`HSET` + expiry) that leaves the other variants
 *   alone, so instances filling different variants of one URL at once never overwrite
 *   each other's work. The hash lives as long as its longest-lived variant; dead variants
 *   are filtered on read.
 * - `cache-tag:<tag>` — a set of keys per tag.
 * - `cache-lock:<key>\n<variant>` — request-collapsing locks, one per variant
 *   (`SET NX PX`, released only by their owner).
 * - `cache:events` — pub/sub announcements ("this key is now stored"), a hint only;
 *   invalidations go through the durable stream of `invalidation-feed.ts`.
 *
 * Every call has a time limit ({@link RedisStore} `timeout`) and fails instead of
 * waiting; callers treat a failure as a miss (reads) or skip (writes). While the
 * connection is down, callers do not call at all ({@link RedisStore.available}).
 */
import { armDeadline, type Disposable, type SharedRedis } from '@perfstack/core';
import { deserializeVariants, type Entry, serializeVariants } from '../entry.js';
import { CacheStoreError } from '../errors.js';
import { type CacheStore, variantId } from './store.js';

/** A message on the invalidation channel. */
export interface CacheEvent {
  readonly from: string;
  readonly op: 'stored';
  readonly key: string;
  /** The request headers the stored response varies on (so the others collapse misses per variant). */
  readonly vary?: readonly string[];
}

const CHANNEL = 'cache:events';

/**
 * Runs `work` with a time limit, measured in loop time (core's `armDeadline`): when this
 * process was starved of CPU, the reply that waited in the socket settles the call
 * instead of a timeout blaming a healthy Redis.
 */
export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const disarm = armDeadline(
      ms,
      () => settled,
      () => reject(new CacheStoreError(`Redis ${what} took longer than ${ms}ms`)),
    );
    work.then(
      (value) => {
        settled = true;
        disarm();
        resolve(value);
      },
      (error: unknown) => {
        settled = true;
        disarm();
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

/** Compare-and-delete: a lock is released only by the instance that holds it. */
const UNLOCK_SCRIPT =
  "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/** Most variants one URL keeps in Redis; past it the hash is emptied and refilled (a Vary on a wild header). */
export const MAX_REDIS_VARIANTS = 64;

/** The Redis (L2) store. */
export class RedisStore implements CacheStore {
  readonly redis: SharedRedis;
  readonly #timeout: number;
  readonly #entryPrefix: string;
  readonly #tagPrefix: string;
  readonly #lockPrefix: string;

  constructor(redis: SharedRedis, timeout: number) {
    this.redis = redis;
    this.#timeout = timeout;
    this.#entryPrefix = `${redis.keyPrefix}cache::`;
    this.#tagPrefix = `${redis.keyPrefix}cache-tag:`;
    this.#lockPrefix = `${redis.keyPrefix}cache-lock:`;
  }

  /** True while Redis can be used. */
  get available(): boolean {
    return this.redis.isUp;
  }

  /** Time limit of each call, ms. */
  get timeout(): number {
    return this.#timeout;
  }

  /** The Redis key of an entry record (for tests and operators). */
  entryKey(key: string): string {
    return `${this.#entryPrefix}${key}`;
  }

  /** Reads every variant of `key`: one `HGETALL`. */
  async readVariants(key: string): Promise<Entry[]> {
    const fields = await withTimeout(this.redis.client.hGetAll(this.entryKey(key)), this.#timeout, 'HGETALL');
    const out: Entry[] = [];
    for (const field of Object.keys(fields ?? {})) {
      for (const entry of deserializeVariants((fields as Record<string, string>)[field])) out.push(entry);
    }
    return out;
  }

  /**
   * Reads the variants of `key` stored under these fields (see {@link variantId}): one
   * `HMGET`, for a request waiting on one variant (it need not decode the others).
   */
  async readVariantFields(key: string, fields: readonly string[]): Promise<Entry[]> {
    const values = await withTimeout(this.redis.client.hmGet(this.entryKey(key), [...fields]), this.#timeout, 'HMGET');
    const out: Entry[] = [];
    for (const value of values ?? []) {
      if (typeof value === 'string') for (const entry of deserializeVariants(value)) out.push(entry);
    }
    return out;
  }

  /** True when the shared connection is a Redis Cluster client. */
  get #cluster(): boolean {
    return isClusterClient(this.redis.client);
  }

  /**
   * Writes one variant of `key` and adds the key to the entry's tag sets. The hash gets
   * the longest TTL of its variants (`PEXPIRE GT`, and `NX` for a new hash). On one node,
   * the tag sets go in the same MULTI; on a cluster each tag set is its own key in its
   * own slot, so each gets its own MULTI (a MULTI over several slots is `CROSSSLOT`),
   * all sent at once: still one round trip of wall-clock time.
   */
  async writeVariant(key: string, entry: Entry, ttl: number): Promise<void> {
    const client = this.redis.client;
    const name = this.entryKey(key);
    const field = variantId(entry.varyNames, entry.varyValues);
    const multi = client.multi();
    // An entry that does not vary replaces every variant; one that varies replaces the "no Vary" record.
    if (field === '') multi.del(name);
    else multi.hDel(name, '');
    multi.hSet(name, field, serializeVariants([entry]));
    multi.pExpire(name, ttl, 'GT');
    multi.pExpire(name, ttl, 'NX');
    multi.hLen(name);
    const tags = entry.tags;
    const work: Promise<unknown>[] = [];
    if (tags.length > 0 && this.#cluster) {
      for (const tag of tags) {
        const tagMulti = client.multi();
        this.#tagOne(tagMulti, tag, key, ttl);
        work.push(tagMulti.exec());
      }
    } else {
      for (const tag of tags) this.#tagOne(multi, tag, key, ttl);
    }
    work.unshift(multi.exec());
    const [replies] = (await withTimeout(Promise.all(work), this.#timeout, 'HSET')) as [unknown[]];
    // A URL whose variants never stop multiplying (Vary on a header with endless values) is emptied.
    if (Number(replies?.[4]) > MAX_REDIS_VARIANTS) {
      await withTimeout(client.del(name), this.#timeout, 'DEL');
    }
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
  async deleteKeys(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    const client = this.redis.client;
    const names = keys.map((key) => this.entryKey(key));
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

  /**
   * Takes the fill lock `name` (a key and variant, see the engine's flights) for `ttl` ms
   * (`SET NX PX`); true when `owner` now holds it.
   */
  async lock(name: string, owner: string, ttl: number): Promise<boolean> {
    const reply = await withTimeout(
      this.redis.client.set(`${this.#lockPrefix}${name}`, owner, {
        condition: 'NX',
        expiration: { type: 'PX', value: ttl },
      }),
      this.#timeout,
      'SET NX',
    );
    return reply === 'OK';
  }

  /** True while some instance holds the fill lock `name`. */
  async locked(name: string): Promise<boolean> {
    return (
      Number(await withTimeout(this.redis.client.exists(`${this.#lockPrefix}${name}`), this.#timeout, 'EXISTS')) > 0
    );
  }

  /** Releases the fill lock if `owner` holds it (best effort; it expires anyway). */
  async unlock(name: string, owner: string): Promise<void> {
    await withTimeout(
      this.redis.client.eval(UNLOCK_SCRIPT, { keys: [`${this.#lockPrefix}${name}`], arguments: [owner] }),
      this.#timeout,
      'unlock',
    );
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
