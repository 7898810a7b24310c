/**
 * One Redis connection shared by every layer (cache L2, rate-limit counters,
 * invalidation and fleet pub/sub), made from a URL or a client the app already has.
 *
 * Built on the `redis` client that @keyv/redis ships (`createClient`), so the cache's
 * Keyv store and the rate limiter's scripts use the very same socket.
 *
 * Failure policy: perfstack must never hang a request on Redis. The offline queue is
 * off (a command while disconnected fails at once instead of waiting), and the client
 * reconnects by itself with capped backoff. node-redis's own command timeout only covers
 * the wait before a command is written, not the wait for the reply, so a Redis that
 * stops answering on an open socket (SIGSTOP, a stalled network) would hang callers:
 * {@link SharedRedis.run} races every command against `commandTimeout`, and after
 * {@link UNRESPONSIVE_AFTER} timeouts in a row marks the connection `down` until a
 * background PING answers again. Layers call `run()` and read {@link SharedRedis.isUp}
 * to skip Redis entirely while it is down; `/health` reads {@link SharedRedis.health}.
 *
 * Timeouts blame the right party: every deadline is measured in *loop time* (see
 * `loop-time.ts`), so a process whose event loop ran late (CPU-starved, overloaded) does
 * not call a healthy Redis late; a reply that arrived while we were busy is read first.
 *
 * A heartbeat (`heartbeatInterval`, default 1 s) sends one PING (or the fleet heartbeat
 * below) on the command connection. If it is not answered within `2 × commandTimeout` of loop
 * time the connection is marked `down` at once — a paused Redis (SIGSTOP) keeps its socket
 * open, so the socket alone never tells — and a background PING brings it back `up` as
 * soon as Redis answers. `/health` and the dashboard read that status.
 *
 * Fleet membership: {@link SharedRedis.joinFleet} makes the heartbeat also record this
 * instance in a sorted set (`<keyPrefix>fleet:instances`, score = last heartbeat) and count
 * the instances heard from within `3 × heartbeatInterval`. {@link SharedRedis.liveInstances}
 * keeps the last count, so it is still known while Redis is unreachable — the rate
 * limiter's local fallback divides its limit by it.
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import KeyvRedis, { createClient, createCluster, Keyv, type RedisClientType } from '@keyv/redis';
import { parseDuration } from './duration.js';
import { consoleLogger } from './logger.js';
import { armDeadline, useLoopTime } from './loop-time.js';
import { checkOptionsObject, optionTypeError } from './options.js';
import type { Disposable, PerfstackLogger } from './types.js';

/** Consecutive command timeouts after which the connection counts as down. */
export const UNRESPONSIVE_AFTER = 3;

/** A Redis command that took longer than `commandTimeout`. */
export class RedisTimeoutError extends Error {
  override readonly name = 'RedisTimeoutError';
  readonly code = 'REDIS_TIMEOUT';
  constructor(ms: number) {
    super(`Redis did not answer within ${ms}ms`);
  }
}

/** A command refused because the connection is down (not sent at all). */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
  readonly code = 'REDIS_UNAVAILABLE';
  constructor() {
    super('Redis is unavailable');
  }
}

/** The redis client type perfstack works with. */
// biome-ignore lint/suspicious/noExplicitAny: node-redis's module/script generics vary with the caller's client.
export type RedisClient = RedisClientType<any, any, any, any, any>;

/** Connection state. */
export type RedisStatus = 'connecting' | 'up' | 'down' | 'closed';

/** Options for {@link createSharedRedis}. */
export interface SharedRedisOptions {
  /** `redis://` URL. One of `url` or `client` is required. */
  readonly url?: string;
  /**
   * Redis Cluster: the `redis://` URLs of some of its nodes (the rest are discovered). perfstack's
   * keys are hash-tagged so that each script touches one slot.
   */
  readonly rootNodes?: readonly string[];
  /** A node-redis client the app already made (connected or not). perfstack will not close it unless `closeClient` is true. */
  readonly client?: RedisClient;
  /** Time to wait for a connection. @default '2s' */
  readonly connectTimeout?: number | string;
  /** Time any one command may take before it fails. @default '500ms' */
  readonly commandTimeout?: number | string;
  /** Longest wait between reconnect attempts. @default '2s' */
  readonly maxReconnectDelay?: number | string;
  /** Prefix for every key and channel perfstack uses. @default 'perfstack:' */
  readonly keyPrefix?: string;
  /** Close a client passed in `client` on {@link SharedRedis.close}. @default false */
  readonly closeClient?: boolean;
  /** Where connection problems are reported. @default console */
  readonly logger?: PerfstackLogger;
  /**
   * How often a heartbeat PING checks that Redis answers (a paused Redis keeps its socket
   * open). `0` turns it off. @default '1s'
   */
  readonly heartbeatInterval?: number | string;
  /** This instance's id in the fleet set. @default `<hostname>:<pid>:<random>` */
  readonly instanceId?: string;
}

/** Health of the Redis connection as `/health` shows it. */
export interface RedisHealth {
  readonly status: RedisStatus;
  readonly since: number;
  readonly lastError: string | undefined;
  readonly errors: number;
  /** Round trip of the last answered heartbeat (ms), when one was answered. */
  readonly heartbeatMs?: number;
  /** Heartbeats that went unanswered within `commandTimeout` (a paused or stalled Redis). */
  readonly missedHeartbeats: number;
  /** Live instances last counted in the fleet set (1 until {@link SharedRedis.joinFleet}). */
  readonly liveInstances: number;
}

const PKG = '@perfstack/core';
const KNOWN = [
  'url',
  'rootNodes',
  'client',
  'connectTimeout',
  'commandTimeout',
  'maxReconnectDelay',
  'keyPrefix',
  'closeClient',
  'logger',
  'heartbeatInterval',
  'instanceId',
];

/** The fleet set's key under the prefix. */
export const FLEET_KEY = 'fleet:instances';

/**
 * The shared connection. Make it with {@link createSharedRedis}; pass it to every layer
 * (the preset does this for you).
 */
export class SharedRedis {
  /** The command client. */
  readonly client: RedisClient;
  /** Prefix for keys and channels. */
  readonly keyPrefix: string;
  /** Command timeout in ms. */
  readonly commandTimeout: number;
  readonly #events = new EventEmitter();
  readonly #ownsClient: boolean;
  readonly #logger: PerfstackLogger;
  #status: RedisStatus = 'connecting';
  #since = Date.now();
  #lastError: string | undefined;
  #errors = 0;
  #subscriber: RedisClient | undefined;
  #subscriberReady: Promise<RedisClient> | undefined;
  readonly #channels = new Map<string, Set<(message: string) => void>>();
  #connecting: Promise<void> | undefined;
  #timeoutsInARow = 0;
  #unresponsive = false;
  #probe: NodeJS.Timeout | undefined;
  readonly #heartbeatInterval: number;
  #heartbeat: NodeJS.Timeout | undefined;
  #heartbeatOut = false;
  #heartbeatMs: number | undefined;
  #missedHeartbeats = 0;
  #inFleet = false;
  #liveInstances = 1;
  readonly #releaseLoopTime: () => void;

  /** This instance's id in the fleet set. */
  readonly instanceId: string;

  /** True for a Redis Cluster client (commands are routed by key; scripts must touch one slot). */
  readonly isCluster: boolean;

  /** @internal use {@link createSharedRedis} */
  constructor(
    client: RedisClient,
    ownsClient: boolean,
    keyPrefix: string,
    commandTimeout: number,
    logger: PerfstackLogger,
    heartbeatInterval = 0,
    instanceId = defaultInstanceId(),
  ) {
    this.client = client;
    this.#heartbeatInterval = heartbeatInterval;
    this.instanceId = instanceId;
    this.#releaseLoopTime = useLoopTime();
    this.#ownsClient = ownsClient;
    this.keyPrefix = keyPrefix;
    this.commandTimeout = commandTimeout;
    this.#logger = logger;
    this.#events.setMaxListeners(0);
    this.isCluster = isRedisCluster(client);
    if (this.isCluster) {
      // A cluster client reports on the cluster as a whole: open and connected, or not.
      client.on('connect', () => {
        if (!this.#unresponsive) this.#setStatus('up');
      });
      client.on('disconnect', () => this.#setStatus(this.#status === 'closed' ? 'closed' : 'down'));
    } else {
      client.on('ready', () => {
        if (!this.#unresponsive) this.#setStatus('up');
      });
      client.on('end', () => this.#setStatus(this.#status === 'closed' ? 'closed' : 'down'));
      client.on('reconnecting', () => {
        if (this.#status === 'up') this.#setStatus('down');
      });
    }
    client.on('error', (error: unknown) => {
      this.#errors++;
      this.#lastError = error instanceof Error ? error.message : String(error);
      if (this.#status === 'up' && !this.#ready()) this.#setStatus('down');
    });
    if (this.#ready()) this.#status = 'up';
    if (heartbeatInterval > 0) {
      this.#heartbeat = setInterval(() => this.#beat(), heartbeatInterval);
      this.#heartbeat.unref();
    }
  }

  /**
   * One heartbeat: a PING (or, once in the fleet, the fleet update) bounded by
   * `2 × commandTimeout` of loop time. Unanswered: the connection is marked down at once.
   */
  #beat(): void {
    if (this.#heartbeatOut || this.#unresponsive || !this.isUp) return;
    this.#heartbeatOut = true;
    const started = performance.now();
    let settled = false;
    // Twice the command timeout: one slow answer fails only the commands that waited for it;
    // a Redis that answers nothing for that long is down (a pause, a stalled network).
    const deadline = 2 * this.commandTimeout;
    const disarm = armDeadline(
      deadline,
      () => settled,
      () => {
        this.#missedHeartbeats++;
        this.recordError(new RedisTimeoutError(deadline));
        this.#markUnresponsive(`the heartbeat was not answered within ${deadline}ms`);
      },
    );
    const done = () => {
      settled = true;
      this.#heartbeatOut = false;
      disarm();
    };
    this.#heartbeatCommand().then(
      () => {
        done();
        this.#heartbeatMs = Math.round((performance.now() - started) * 100) / 100;
      },
      (error: unknown) => {
        done();
        this.recordError(error);
      },
    );
  }

  /** PING, or the fleet update: record this instance, drop silent ones, count the rest. */
  async #heartbeatCommand(): Promise<void> {
    if (!this.#inFleet || this.isCluster) {
      await this.client.ping();
      return;
    }
    const now = Date.now();
    const key = `${this.keyPrefix}${FLEET_KEY}`;
    const replies = await this.client
      .multi()
      .zAdd(key, { score: now, value: this.instanceId })
      .zRemRangeByScore(key, '-inf', now - this.fleetTimeout)
      .zCard(key)
      .pExpire(key, this.fleetTimeout * 4)
      .exec();
    const count = Number(replies[2]);
    if (Number.isInteger(count) && count > 0) this.#liveInstances = count;
  }

  /** ms after which an instance that sent no heartbeat no longer counts as live. */
  get fleetTimeout(): number {
    return 3 * (this.#heartbeatInterval > 0 ? this.#heartbeatInterval : 1000);
  }

  /**
   * Joins the fleet set: from now on every heartbeat records this instance and counts the
   * live ones ({@link liveInstances}). Idempotent; resolves after the first count (or at
   * once when Redis is down). Needs `heartbeatInterval` > 0 to stay counted.
   */
  async joinFleet(): Promise<void> {
    if (this.#inFleet) return;
    this.#inFleet = true;
    if (!this.isUp || this.isCluster) return;
    await this.#heartbeatCommand().catch((error: unknown) => this.recordError(error));
  }

  /**
   * Instances heard from within {@link fleetTimeout}, as last counted (this one included).
   * Kept while Redis is unreachable; 1 before {@link joinFleet}.
   */
  get liveInstances(): number {
    return this.#liveInstances;
  }

  /**
   * Connects (idempotent). Resolves once the client is ready or the first attempt failed;
   * never rejects: a failed first connection leaves the status `down` while the client
   * keeps retrying in the background.
   */
  connect(): Promise<void> {
    if (this.#connecting !== undefined) return this.#connecting;
    if (this.client.isOpen) {
      if (this.#ready()) this.#setStatus('up');
      return Promise.resolve();
    }
    this.#connecting = new Promise<void>((resolve) => {
      const firstError = (error: unknown) => {
        this.#lastError = error instanceof Error ? error.message : String(error);
        this.#setStatus('down');
        this.#logger.warn(
          `Redis connection failed: ${this.#lastError}; perfstack keeps serving without it and retries`,
        );
        resolve();
      };
      this.client.once('error', firstError);
      this.client.connect().then(
        () => {
          this.client.off('error', firstError);
          this.#setStatus('up');
          resolve();
        },
        (error: unknown) => {
          this.client.off('error', firstError);
          firstError(error);
        },
      );
    });
    return this.#connecting;
  }

  /** Current state. */
  get status(): RedisStatus {
    return this.#status;
  }

  /** True while commands can be sent. */
  get isUp(): boolean {
    return this.#status === 'up' && this.#ready();
  }

  /** A single client is ready after its handshake; a cluster client once it is open. */
  #ready(): boolean {
    return this.isCluster ? this.client.isOpen : this.client.isReady;
  }

  /**
   * Runs one command (or one script call) with the command timeout. Rejects at once with
   * {@link RedisUnavailableError} while the connection is down, and with
   * {@link RedisTimeoutError} when no answer came in time. Errors are counted for `/health`.
   *
   * @example const hits = await redis.run((c) => c.incr(key))
   */
  run<T>(command: (client: RedisClient) => Promise<T>): Promise<T> {
    if (!this.isUp) return Promise.reject(new RedisUnavailableError());
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const disarm = armDeadline(
        this.commandTimeout,
        () => settled,
        () => {
          settled = true;
          const error = new RedisTimeoutError(this.commandTimeout);
          this.recordError(error);
          this.#onTimeout();
          reject(error);
        },
      );
      let pending: Promise<T>;
      try {
        pending = command(this.client);
      } catch (thrown) {
        settled = true;
        disarm();
        this.recordError(thrown);
        reject(thrown);
        return;
      }
      pending.then(
        (value) => {
          if (settled) return;
          settled = true;
          disarm();
          this.#timeoutsInARow = 0;
          resolve(value);
        },
        (error: unknown) => {
          if (settled) return;
          settled = true;
          disarm();
          this.recordError(error);
          reject(error);
        },
      );
    });
  }

  /**
   * A layer saw a command time out (in loop time): after {@link UNRESPONSIVE_AFTER} in a
   * row the connection counts as down. Layers with their own deadline call this too.
   */
  reportTimeout(): void {
    this.#onTimeout();
  }

  /** A layer's command was answered: the timeouts-in-a-row count starts over. */
  reportAnswer(): void {
    this.#timeoutsInARow = 0;
  }

  #onTimeout(): void {
    this.#timeoutsInARow++;
    if (this.#timeoutsInARow < UNRESPONSIVE_AFTER) return;
    this.#markUnresponsive(`${UNRESPONSIVE_AFTER} timeouts in a row`);
  }

  /** Marks the connection down until a background PING is answered again. */
  #markUnresponsive(why: string): void {
    if (this.#unresponsive || this.#status === 'closed') return;
    this.#unresponsive = true;
    this.#logger.warn(`Redis stopped answering (${why}); perfstack serves without it until it answers again`);
    this.#setStatus('down');
    const probe = () => {
      this.#probe = undefined;
      if (this.#status === 'closed' || !this.#unresponsive) return;
      const timer = setTimeout(() => {
        if (this.#unresponsive) this.#probe ??= setTimeout(probe, 100).unref();
      }, this.commandTimeout);
      timer.unref();
      this.client.ping().then(
        () => {
          clearTimeout(timer);
          if (!this.#unresponsive) return;
          this.#unresponsive = false;
          this.#timeoutsInARow = 0;
          this.#logger.warn('Redis answers again');
          if (this.#ready()) this.#setStatus('up');
        },
        () => {
          clearTimeout(timer);
          if (this.#unresponsive) this.#probe ??= setTimeout(probe, 100).unref();
        },
      );
    };
    this.#probe = setTimeout(probe, 100).unref();
  }

  /** State, for `/health` and the dashboard. */
  health(): RedisHealth {
    return {
      status: this.#status,
      since: this.#since,
      lastError: this.#lastError,
      errors: this.#errors,
      ...(this.#heartbeatMs === undefined ? {} : { heartbeatMs: this.#heartbeatMs }),
      missedHeartbeats: this.#missedHeartbeats,
      liveInstances: this.#liveInstances,
    };
  }

  /** Counts an error a layer saw on a command (timeouts included), for `/health`. */
  recordError(error: unknown): void {
    this.#errors++;
    this.#lastError = error instanceof Error ? error.message : String(error);
  }

  /** Calls `listener` on every status change. */
  onStatusChange(listener: (status: RedisStatus) => void): Disposable {
    this.#events.on('status', listener);
    return { dispose: () => this.#events.off('status', listener) };
  }

  /** A Keyv over the shared client, with its own namespace (`<keyPrefix><namespace>`). */
  keyv<T = unknown>(namespace: string): Keyv<T> {
    const store = new KeyvRedis<T>(this.client as never, {
      namespace: `${this.keyPrefix}${namespace}`,
      throwOnErrors: true,
      throwOnConnectError: true,
      connectionTimeout: this.commandTimeout,
    });
    const keyv = new Keyv<T>({
      store,
      namespace: `${this.keyPrefix}${namespace}`,
      useKeyPrefix: false,
      throwOnErrors: true,
    });
    keyv.on('error', (error: unknown) => this.recordError(error));
    return keyv;
  }

  /** Publishes on a perfstack channel (`<keyPrefix><channel>`). Fails fast when Redis is down. */
  async publish(channel: string, message: string): Promise<void> {
    await this.client.publish(`${this.keyPrefix}${channel}`, message);
  }

  /**
   * Subscribes to a perfstack channel on one subscriber connection shared by all layers
   * (a connection in subscribe mode cannot send other commands, so it is a duplicate of
   * the command client). Re-subscribes by itself after a reconnect.
   */
  async subscribe(channel: string, listener: (message: string) => void): Promise<Disposable> {
    const full = `${this.keyPrefix}${channel}`;
    let listeners = this.#channels.get(full);
    const subscriber = await this.#getSubscriber();
    if (listeners === undefined) {
      listeners = new Set();
      this.#channels.set(full, listeners);
      const set = listeners;
      await subscriber.subscribe(full, (message: string) => {
        for (const l of set) l(message);
      });
    }
    listeners.add(listener);
    return {
      dispose: () => {
        listeners.delete(listener);
      },
    };
  }

  #getSubscriber(): Promise<RedisClient> {
    this.#subscriberReady ??= (async () => {
      const subscriber = this.client.duplicate({ disableOfflineQueue: false }) as RedisClient;
      subscriber.on('error', (error: unknown) => this.recordError(error));
      this.#subscriber = subscriber;
      await subscriber.connect();
      return subscriber;
    })();
    // A failed first connection must not poison every later subscribe(): try again next time.
    this.#subscriberReady.catch(() => {
      this.#subscriberReady = undefined;
      this.#subscriber?.destroy();
      this.#subscriber = undefined;
    });
    return this.#subscriberReady;
  }

  /** Closes the subscriber and, if perfstack made it, the command client. */
  async close(): Promise<void> {
    if (this.#status === 'closed') return;
    const wasUp = this.isUp;
    this.#setStatus('closed');
    if (this.#probe) clearTimeout(this.#probe);
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#releaseLoopTime();
    if (this.#inFleet && wasUp && !this.isCluster) {
      // Leave the fleet set so the others' share grows back at once (best effort).
      await Promise.race([
        this.client.zRem(`${this.keyPrefix}${FLEET_KEY}`, this.instanceId).catch(() => 0),
        new Promise((resolve) => setTimeout(resolve, this.commandTimeout).unref()),
      ]);
    }
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    if (subscriber?.isOpen) await subscriber.close().catch(() => subscriber.destroy());
    else subscriber?.destroy();
    if (this.#ownsClient) {
      if (this.client.isOpen) await this.client.close().catch(() => this.client.destroy());
      else this.client.destroy();
    }
    this.#events.removeAllListeners();
  }

  #setStatus(status: RedisStatus): void {
    if (this.#status === status || (this.#status === 'closed' && status !== 'closed')) return;
    this.#status = status;
    this.#since = Date.now();
    this.#events.emit('status', status);
  }
}

/**
 * Makes the shared connection from a URL, a client, or options, and starts connecting.
 * The returned object is usable at once: while it connects, `isUp` is false and layers
 * do without Redis.
 *
 * @param input a `redis://` URL, a node-redis client, or {@link SharedRedisOptions}
 * @returns the shared connection
 * @throws {TypeError} on a bad URL or option
 * @example const redis = createSharedRedis(process.env.REDIS_URL)
 */
export function createSharedRedis(input: string | RedisClient | SharedRedisOptions): SharedRedis {
  let options: SharedRedisOptions;
  if (typeof input === 'string') options = { url: input };
  else if (isRedisClient(input)) options = { client: input };
  else options = checkOptionsObject(PKG, 'createSharedRedis', input, KNOWN) as SharedRedisOptions;
  const connectTimeout = parseDuration(options.connectTimeout ?? 2000, 'redis.connectTimeout', { pkg: PKG, min: 1 });
  const commandTimeout = parseDuration(options.commandTimeout ?? 500, 'redis.commandTimeout', { pkg: PKG, min: 1 });
  const maxDelay = parseDuration(options.maxReconnectDelay ?? 2000, 'redis.maxReconnectDelay', { pkg: PKG, min: 1 });
  const heartbeatInterval = parseDuration(options.heartbeatInterval ?? 1000, 'redis.heartbeatInterval', {
    pkg: PKG,
    min: 0,
  });
  const instanceId = options.instanceId ?? defaultInstanceId();
  if (typeof instanceId !== 'string' || instanceId === '') {
    throw optionTypeError(PKG, 'redis.instanceId', instanceId, 'a non-empty string');
  }
  const keyPrefix = options.keyPrefix ?? 'perfstack:';
  if (typeof keyPrefix !== 'string') throw optionTypeError(PKG, 'redis.keyPrefix', keyPrefix, 'a string');
  const logger = options.logger ?? consoleLogger;
  let client: RedisClient;
  let owns: boolean;
  if (options.client !== undefined) {
    if (!isRedisClient(options.client))
      throw optionTypeError(PKG, 'redis.client', options.client, 'a node-redis client');
    client = options.client;
    owns = options.closeClient === true;
  } else if (options.rootNodes !== undefined) {
    const nodes = options.rootNodes;
    if (
      !Array.isArray(nodes) ||
      nodes.length === 0 ||
      nodes.some((u) => typeof u !== 'string' || !/^rediss?:\/\//.test(u))
    ) {
      throw optionTypeError(PKG, 'redis.rootNodes', nodes, 'a non-empty array of redis:// URLs');
    }
    client = createCluster({
      rootNodes: nodes.map((url) => ({ url })),
      defaults: {
        disableOfflineQueue: true,
        socket: {
          connectTimeout,
          reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), maxDelay),
        },
      },
    }) as unknown as RedisClient;
    owns = true;
  } else {
    const url = options.url;
    if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) {
      throw optionTypeError(
        PKG,
        'redis',
        url,
        'a redis:// or rediss:// URL, a node-redis client, or { url | client, ... }',
      );
    }
    client = createClient({
      url,
      disableOfflineQueue: true,
      pingInterval: 5000,
      // No per-command timeout in node-redis: it costs an AbortSignal and a timer per command
      // and stops counting once the command is written anyway. run() bounds every call.
      socket: {
        connectTimeout,
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** Math.min(retries, 10), maxDelay),
      },
    }) as RedisClient;
    owns = true;
  }
  const shared = new SharedRedis(client, owns, keyPrefix, commandTimeout, logger, heartbeatInterval, instanceId);
  void shared.connect();
  return shared;
}

/** True for a node-redis client, single-node or cluster. */
export function isRedisClient(value: unknown): value is RedisClient {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { connect?: unknown }).connect === 'function' &&
    typeof (value as { duplicate?: unknown }).duplicate === 'function' &&
    ('isReady' in value || isRedisCluster(value))
  );
}

/** True for a node-redis cluster client (`createCluster`). */
export function isRedisCluster(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { nodeClient?: unknown }).nodeClient === 'function' &&
    'masters' in value
  );
}

/** `<hostname>:<pid>:<random>`: unique per process, readable on the dashboard. */
function defaultInstanceId(): string {
  return `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
}
