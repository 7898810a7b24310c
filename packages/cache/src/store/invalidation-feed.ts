/**
 * Durable invalidation across instances: a Redis stream (`<prefix>cache-inv`) that every
 * instance appends its invalidations to and reads from, instead of pub/sub, which drops
 * a message sent while a subscriber (or Redis) does not answer.
 *
 * Sending: an invalidation deletes the L2 records (tags and prefixes resolved in Redis),
 * then `XADD`s one entry. When Redis does not answer, the operation waits in a local
 * queue, in order, and is retried every {@link RETRY_MS} until Redis takes it; so the L2
 * copies are deleted and the other instances told as soon as Redis answers again.
 *
 * Reading: each instance reads the stream on its own connection (`XREAD BLOCK`, which
 * would stall the shared command connection) from the last id it applied. A read that
 * does not answer within `BLOCK + 2 × timeout` drops the connection; the reader
 * reconnects (backing off up to {@link MAX_BACKOFF_MS}) and carries on from its last id,
 * so messages sent meanwhile are applied then. On every (re)connect it checks that
 * nothing it has not read was lost: the server's `run_id` (a restarted Redis has a new
 * one), the stream itself (gone after a flush while we had read from it) and its counts
 * (`XINFO STREAM`: entries added since our last id versus entries left after it, so
 * entries trimmed unread are noticed). If something may have been lost,
 * the instance drops its whole L1 ({@link FeedOptions.onReset}).
 *
 * The bound: an instance applies an invalidation made anywhere at most
 * {@link InvalidationFeed.bound} ms (`500 ms + 5 × timeout`) after Redis answers again,
 * and the feed counts as stalled (health `degraded`) when no read has answered for that
 * long.
 */
import { type HealthCheck, loopNow, type SharedRedis, useLoopTime } from '@perfstack/core';
import { CacheStoreError } from '../errors.js';
import type { RedisStore } from './redis.js';
import { withTimeout } from './redis.js';

/** What one invalidation removes. */
export interface InvalidationOp {
  readonly keys: readonly string[];
  readonly tags: readonly string[];
  /** A key prefix; `''` means every key. */
  readonly prefix: string | undefined;
  /** The id of the cache that sent it, when it wants to skip its own messages (the data cache). */
  readonly from?: string;
}

/** What {@link InvalidationFeed} needs from the engine. */
export interface FeedOptions {
  readonly redis: SharedRedis;
  readonly store: RedisStore;
  /** Time limit of each call, ms (the cache's `redisTimeout`). */
  readonly timeout: number;
  /** Applies an invalidation (from any instance, this one included) to L1. */
  readonly onInvalidate: (op: InvalidationOp) => void;
  /** Messages may have been lost: drop every L1 entry. */
  readonly onReset: () => void;
  /** A Redis call failed (logged once by the engine). */
  readonly onError: (error: unknown) => void;
  /** Longest an `XREAD` blocks, ms. @default 250 */
  readonly blockMs?: number;
}

/** How often the queued invalidations are retried while Redis does not take them. */
export const RETRY_MS = 250;
/** Longest wait between two reconnects of the reader. */
export const MAX_BACKOFF_MS = 250;
/** Entries the stream keeps (approximately): older ones are trimmed. */
export const STREAM_LENGTH = 10_000;
/** Queued invalidations kept while Redis is away; past it they fold into one "everything". */
export const MAX_QUEUED = 1000;

type Reader = SharedRedis['client'];
type StreamReply = [string, [string, string[]][]][] | null;

/** Compares two stream ids (`ms-seq`). */
export function compareIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

/** The invalidation stream of one instance: sender queue and reader. */
export class InvalidationFeed {
  readonly #o: FeedOptions;
  readonly #stream: string;
  readonly #block: number;
  readonly #queue: InvalidationOp[] = [];
  #retry: NodeJS.Timeout | undefined;
  #flushing = false;
  #reader: Reader | undefined;
  #lastId = '0-0';
  /** The stream's `entries-added` count at our last id. */
  #added = 0;
  #epoch: string | undefined;
  #lastContact = loopNow();
  #releaseLoopTime: (() => void) | undefined;
  #closed = false;
  #running: Promise<void> | undefined;
  #wake: (() => void) | undefined;

  constructor(options: FeedOptions) {
    this.#o = options;
    this.#stream = `${options.redis.keyPrefix}cache-inv`;
    this.#block = options.blockMs ?? 250;
  }

  /** The bound of the module comment, ms: `500 + 5 × timeout`. */
  get bound(): number {
    return 500 + 5 * this.#o.timeout;
  }

  /**
   * ms since a read of the stream last answered, in loop time (core's `loopNow`): time this
   * process spent starved of CPU does not count against Redis.
   */
  get lag(): number {
    return loopNow() - this.#lastContact;
  }

  /** True when no read has answered within {@link bound}: invalidations from others may be missing. */
  get stalled(): boolean {
    return this.lag > this.bound;
  }

  /** Invalidations made here that Redis has not taken yet. */
  get queued(): number {
    return this.#queue.length;
  }

  /** The id of the last stream entry applied. */
  get lastId(): string {
    return this.#lastId;
  }

  /** Starts reading (idempotent). */
  start(): void {
    if (this.#running !== undefined) return;
    this.#releaseLoopTime = useLoopTime();
    this.#lastContact = loopNow();
    this.#running = this.#run();
  }

  /**
   * Sends an invalidation: deletes the L2 records, then tells every instance. Resolves
   * with the number of L2 records deleted, or 0 when Redis did not answer (it is then
   * queued and sent when Redis answers again).
   */
  async publish(op: InvalidationOp): Promise<number> {
    if (this.#closed) return 0;
    if (this.#queue.length === 0 && !this.#flushing) {
      try {
        return await this.#send(op);
      } catch (error) {
        this.#o.onError(error);
      }
    }
    this.#enqueue(op);
    return 0;
  }

  #enqueue(op: InvalidationOp): void {
    if (this.#queue.length >= MAX_QUEUED) this.#queue.splice(0, this.#queue.length, { keys: [], tags: [], prefix: '' });
    else this.#queue.push(op);
    this.#scheduleRetry();
  }

  #scheduleRetry(): void {
    if (this.#retry !== undefined || this.#closed) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      this.#flush();
    }, RETRY_MS);
    this.#retry.unref();
  }

  /** Sends the queued invalidations, in order; stops at the first failure and retries later. */
  #flush(): void {
    if (this.#flushing || this.#closed) return;
    this.#flushing = true;
    (async () => {
      while (this.#queue.length > 0 && !this.#closed) {
        await this.#send(this.#queue[0] as InvalidationOp);
        this.#queue.shift();
      }
    })().then(
      () => {
        this.#flushing = false;
      },
      (error: unknown) => {
        this.#flushing = false;
        this.#o.onError(error);
        this.#scheduleRetry();
      },
    );
  }

  /** Deletes the records in L2, then appends the message. */
  async #send(op: InvalidationOp): Promise<number> {
    const store = this.#o.store;
    const keys = new Set<string>(op.keys);
    if (op.tags.length > 0) for (const k of await store.takeTagged(op.tags)) keys.add(k);
    if (op.prefix !== undefined) for (const k of await store.keysWithPrefix(op.prefix)) keys.add(k);
    const all = [...keys];
    const deleted = await store.deleteKeys(all);
    const fields: string[] = ['keys', JSON.stringify(all), 'tags', JSON.stringify(op.tags)];
    if (op.prefix !== undefined) fields.push('prefix', op.prefix);
    if (op.from !== undefined) fields.push('from', op.from);
    const args = ['XADD', this.#stream, 'MAXLEN', '~', String(STREAM_LENGTH), '*', ...fields];
    await withTimeout(this.#command(this.#o.redis.client, args, false), this.#o.timeout, 'XADD');
    return deleted;
  }

  /** Sends a raw command on a single or cluster client (a cluster routes it by the stream key). */
  #command(client: Reader, args: string[], readonly: boolean): Promise<unknown> {
    if (this.#o.redis.isCluster) {
      return (client as unknown as { sendCommand(k: string, r: boolean, a: string[]): Promise<unknown> }).sendCommand(
        this.#stream,
        readonly,
        args,
      );
    }
    return client.sendCommand(args);
  }

  /** The reader loop: connect, check for lost messages, XREAD BLOCK, apply, repeat. */
  async #run(): Promise<void> {
    let backoff = 25;
    while (!this.#closed) {
      try {
        const reader = this.#reader ?? (await this.#connect());
        // A cluster client shares its node connections: read without blocking them, every BLOCK ms.
        const cluster = this.#o.redis.isCluster;
        const block = cluster ? [] : ['BLOCK', String(this.#block)];
        const reply = (await withTimeout(
          this.#command(reader, ['XREAD', 'COUNT', '500', ...block, 'STREAMS', this.#stream, this.#lastId], true),
          (cluster ? 0 : this.#block) + 2 * this.#o.timeout,
          'XREAD',
        )) as StreamReply;
        this.#lastContact = loopNow();
        backoff = 25;
        for (const [, entries] of reply ?? []) for (const [id, fields] of entries) this.#apply(id, fields);
        if (cluster && (reply === null || reply.length === 0)) await this.#pause(this.#block);
      } catch (error) {
        if (this.#closed) break;
        this.#drop();
        this.#o.onError(error);
        await this.#pause(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
    this.#drop();
  }

  /** Waits `ms` (cut short by close()). */
  async #pause(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#wake = resolve;
      setTimeout(resolve, ms).unref();
    });
    this.#wake = undefined;
  }

  /**
   * Opens the reader's connection (a duplicate of the shared one, since `XREAD BLOCK`
   * holds its connection; on a cluster, the shared client itself, read without blocking)
   * and checks that no message was lost while away.
   */
  async #connect(): Promise<Reader> {
    const redis = this.#o.redis;
    const limit = 2 * this.#o.timeout;
    let reader: Reader;
    if (redis.isCluster) {
      if (!redis.isUp) throw new CacheStoreError('Redis is unavailable');
      reader = redis.client;
    } else {
      reader = redis.client.duplicate() as Reader;
      reader.on('error', () => {});
      this.#reader = reader;
      // A new connection's handshake is slower than a command: its own, wider limit.
      await withTimeout(reader.connect(), Math.max(2000, limit), 'connect');
    }
    // The server's run id changes when Redis restarts (emptied, or not: either way, assume the worst).
    const server = String(await withTimeout(this.#command(reader, ['INFO', 'server'], true), limit, 'INFO'));
    const epoch = /run_id:(\w+)/.exec(server)?.[1] ?? 'unknown';
    const info = await withTimeout(
      this.#command(reader, ['XINFO', 'STREAM', this.#stream], true).catch(() => undefined),
      limit,
      'XINFO',
    );
    const fields = Array.isArray(info) ? (info as unknown[]) : [];
    const field = (name: string): unknown => {
      const at = fields.indexOf(name);
      return at === -1 ? undefined : fields[at + 1];
    };
    const firstRun = this.#epoch === undefined;
    const added = Number(field('entries-added') ?? Number.NaN);
    let lost = false;
    if (!firstRun && (epoch !== this.#epoch || (info === undefined && this.#lastId !== '0-0'))) {
      lost = true;
      this.#lastId = '0-0';
      this.#added = 0;
    } else if (!firstRun) {
      lost = this.#trimmedPastUs(field, added);
    }
    if (firstRun) {
      // Start after what is already there: older invalidations concern entries made before us.
      const last = field('last-generated-id');
      this.#lastId = typeof last === 'string' ? last : '0-0';
      this.#added = Number.isFinite(added) ? added : 0;
    }
    this.#epoch = epoch;
    if (lost) this.#o.onReset();
    this.#lastContact = loopNow();
    this.#reader = reader;
    return reader;
  }

  /**
   * True when entries after our last id were trimmed away unread. Trimming removes the
   * oldest entries: if the first entry left is not after our last id, nothing after it went.
   * Otherwise every entry left is after it, and `entries-added` (Redis 7) tells how many
   * were added after it: more than are left means some were lost. Without that count,
   * assume the worst.
   */
  #trimmedPastUs(field: (name: string) => unknown, added: number): boolean {
    const length = Number(field('length') ?? 0);
    const first = field('recorded-first-entry-id');
    const firstEntry = field('first-entry');
    const firstId = typeof first === 'string' ? first : Array.isArray(firstEntry) ? String(firstEntry[0]) : undefined;
    const last = field('last-generated-id');
    if (typeof last !== 'string' || compareIds(last, this.#lastId) <= 0) return false;
    if (length > 0 && firstId !== undefined && firstId !== '0-0' && compareIds(firstId, this.#lastId) <= 0)
      return false;
    if (!Number.isFinite(added)) return true;
    return added - this.#added > length;
  }

  #apply(id: string, fields: string[]): void {
    this.#lastId = id;
    this.#added++;
    const read = (name: string): string | undefined => {
      for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
      return undefined;
    };
    const list = (text: string | undefined): string[] => {
      if (text === undefined) return [];
      try {
        const value: unknown = JSON.parse(text);
        return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
      } catch {
        return [];
      }
    };
    const from = read('from');
    this.#o.onInvalidate({
      keys: list(read('keys')),
      tags: list(read('tags')),
      prefix: read('prefix'),
      ...(from === undefined ? {} : { from }),
    });
  }

  #drop(): void {
    const reader = this.#reader;
    this.#reader = undefined;
    // The shared (cluster) client is not ours to close.
    if (reader === undefined || reader === this.#o.redis.client) return;
    try {
      reader.destroy();
    } catch {
      // already closed
    }
  }

  /** Feed state for `health()`. */
  health(): { readonly lagMs: number; readonly boundMs: number; readonly queued: number; readonly stalled: boolean } {
    return { lagMs: Math.round(this.lag), boundMs: this.bound, queued: this.#queue.length, stalled: this.stalled };
  }

  /** Stops reading and retrying (queued invalidations are dropped: the process is going away). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    this.#drop();
    this.#wake?.();
    this.#releaseLoopTime?.();
    await this.#running?.catch(() => {});
  }
}

/**
 * A cache's health from its Redis connection and invalidation feed (the response cache's and the
 * data cache's): `degraded` while Redis is down, and while it does not answer on an open socket
 * (the feed not read within its bound, or invalidations waiting for Redis).
 *
 * @param fallback what serves while Redis is out (`the origin`, `the loaders`)
 * @param queuedInDetail whether the detail names the invalidations queued
 */
export function cacheHealth(
  entries: number,
  redis: SharedRedis | undefined,
  feed: ReturnType<InvalidationFeed['health']> | undefined,
  fallback: string,
  queuedInDetail: boolean,
): HealthCheck {
  if (redis === undefined || feed === undefined) return { status: 'ok', l2: 'none', entries };
  if (!redis.isUp) {
    return {
      status: 'degraded',
      detail: `Redis (L2) is unreachable: serving from memory (L1) and ${fallback}`,
      l2: redis.status,
      entries,
      feed,
    };
  }
  if (feed.stalled || feed.queued > 0) {
    const queued = queuedInDetail ? `, ${feed.queued} invalidation(s) queued` : '';
    return {
      status: 'degraded',
      detail: `Redis (L2) does not answer: the invalidation feed was last read ${feed.lagMs}ms ago (bound ${feed.boundMs}ms)${queued}`,
      l2: 'unresponsive',
      entries,
      feed,
    };
  }
  return { status: 'ok', l2: 'up', entries, feed };
}
