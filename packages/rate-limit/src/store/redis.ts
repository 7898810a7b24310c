/**
 * The atomic Redis store, on the shared connection from @perfstack/core (no second client).
 *
 * One request is one `EVALSHA` of `store/script.ts`: every limit read, decided and written
 * in one atomic step, so N instances sharing Redis enforce one limit exactly. After a
 * Redis restart the script cache is empty: the first `NOSCRIPT` answer is retried once
 * with `EVAL` (which also caches the script), and the script is loaded again with
 * `SCRIPT LOAD` whenever the connection comes back up.
 *
 * Every call is bounded by the shared connection's `commandTimeout`, so a slow or frozen
 * Redis fails the call quickly instead of hanging the request; the middleware then applies
 * the failure policy (local limiter or 503). node-redis's own `timeout` command option is
 * turned off for the decision call (`timeout: 0`): it only covers the wait *before* a
 * command is written (short here: the shared connection disables the offline queue), yet
 * costs an AbortSignal, a timer and a DOMException per command. The bound is enforced here instead:
 * calls in flight sit in an insertion-ordered set, and one unref()ed watchdog timer fails
 * those older than the timeout — no timer per request. Age is measured in *loop time*
 * (core's `loopNow`: wall time minus the time our own event loop could not run), and an
 * expired call is failed only if it is still unanswered after one more I/O turn
 * (`setImmediate`), so a CPU-starved instance does not blame a healthy Redis for its own
 * lateness (issue 16).
 *
 * Redis Cluster: every key of one call carries the same hash tag (see `keyPlan` in
 * `rate-limit.ts`), so one script touches one slot. A node-redis cluster client routes a
 * raw command by its first key (`sendCommand(firstKey, isReadonly, args, options)`), so
 * {@link send} passes it; the script is then cached per node by the first `EVAL` after a
 * `NOSCRIPT`, instead of an up-front `SCRIPT LOAD` (which would reach one node only).
 */
import { type Disposable, loopNow, type SharedRedis } from '@perfstack/core';
import type { LimitSpec } from '../algorithms.js';
import { DECIDE_SCRIPT, DECIDE_SHA } from './script.js';
import type { Decision, DecisionStore } from './types.js';

/** How each limit's key is made from the client key: `head + clientKey + tail`, or a constant for global limits. */
export interface RedisKeyPlan {
  readonly head: readonly string[];
  readonly tail: readonly string[];
  /** True for global limits: the key is `head` alone. */
  readonly global: readonly boolean[];
}

/** True for a node-redis cluster client (it routes commands by key and has no single socket). */
export function isClusterClient(client: unknown): boolean {
  return (
    typeof client === 'object' &&
    client !== null &&
    typeof (client as { getRandomNode?: unknown }).getRandomNode === 'function' &&
    typeof (client as { nodeClient?: unknown }).nodeClient === 'function'
  );
}

type SendCommand = (args: string[], options: { readonly timeout: number }) => Promise<unknown>;
type ClusterSendCommand = (
  firstKey: string | undefined,
  isReadonly: boolean,
  args: string[],
  options: { readonly timeout: number },
) => Promise<unknown>;

/** Sends a raw command on a single-node or a cluster client (routed by `firstKey`). */
function send(client: unknown, firstKey: string | undefined, args: string[], options: { readonly timeout: number }) {
  if (isClusterClient(client)) {
    return (client as { sendCommand: ClusterSendCommand }).sendCommand(firstKey, false, args, options);
  }
  return (client as { sendCommand: SendCommand }).sendCommand(args, options);
}

/**
 * Per-command options of the decision call: `timeout: 0` overrides the client-wide
 * `commandOptions.timeout` the shared connection sets (node-redis merges the two and arms
 * no timer for 0); the watchdog bounds the call instead.
 */
const UNTIMED = { timeout: 0 } as const;

/** A Redis call that took longer than `commandTimeout`. */
export class RedisTimeoutError extends Error {
  override readonly name = 'RedisTimeoutError';
  constructor(timeout: number) {
    super(`Redis did not answer within ${timeout}ms`);
  }
}

interface Pending {
  readonly at: number;
  readonly resolve: (decision: Decision) => void;
  readonly reject: (error: unknown) => void;
}

/** The Redis decision store. */
export class RedisStore implements DecisionStore {
  readonly #redis: SharedRedis;
  readonly #plan: RedisKeyPlan;
  readonly #n: string;
  #specArgs: readonly string[];
  readonly #commandOptions: { readonly timeout: number };
  readonly #statusListener: Disposable;
  readonly #timeout: number;
  readonly #pending = new Set<Pending>();
  readonly #expired: Pending[] = [];
  #watchdog: NodeJS.Timeout | undefined;

  /**
   * @param timeout how long a decision may take, in loop time (the connection's
   *   `commandTimeout`, plus `storeWait` when the limiter fails closed)
   */
  constructor(redis: SharedRedis, specs: readonly LimitSpec[], plan: RedisKeyPlan, timeout = redis.commandTimeout) {
    this.#redis = redis;
    this.#plan = plan;
    this.#n = String(specs.length);
    const args: string[] = [];
    for (const s of specs) args.push(String(s.algorithm), String(s.limit), String(s.windowMs), String(s.blockMs));
    this.#specArgs = args;
    this.#timeout = timeout;
    this.#commandOptions = { timeout: redis.commandTimeout };
    this.#statusListener = redis.onStatusChange((status) => {
      if (status === 'up') this.#load();
    });
    if (redis.isUp) this.#load();
  }

  /** New limits from the next decision (runtime settings); the number of limits never changes. */
  setSpecs(specs: readonly LimitSpec[]): void {
    const args: string[] = [];
    for (const s of specs) args.push(String(s.algorithm), String(s.limit), String(s.windowMs), String(s.blockMs));
    this.#specArgs = args;
  }

  /** The Redis keys of `key`, one per limit. */
  keys(key: string): string[] {
    const { head, tail, global } = this.#plan;
    const keys = new Array<string>(head.length);
    for (let i = 0; i < head.length; i++) keys[i] = global[i] ? (head[i] as string) : `${head[i]}${key}${tail[i]}`;
    return keys;
  }

  /** Decides a request in one round trip. Rejects on any Redis error, or after `commandTimeout`. */
  decide(key: string, cost: number, now: number, dry: boolean): Promise<Decision> {
    return new Promise<Decision>((resolve, reject) => {
      const pending: Pending = { at: loopNow(), resolve, reject };
      this.#pending.add(pending);
      if (this.#watchdog === undefined) this.#startWatchdog();
      this.#send(key, cost, now, dry).then(
        (decision) => {
          if (this.#pending.delete(pending)) resolve(decision);
        },
        (error: unknown) => {
          if (this.#pending.delete(pending)) reject(error);
        },
      );
    });
  }

  #startWatchdog(): void {
    const timeout = this.#timeout;
    this.#watchdog = setInterval(
      () => {
        if (this.#expired.length > 0) return; // a verdict is already waiting for its I/O turn
        const now = loopNow();
        for (const pending of this.#pending) {
          if (now - pending.at < timeout) break; // insertion order: the rest are younger
          this.#expired.push(pending);
        }
        if (this.#expired.length === 0) return;
        // One more I/O turn: a reply already in the socket settles its call first.
        setImmediate(() => {
          const expired = this.#expired.splice(0);
          let late = 0;
          for (const pending of expired) {
            if (!this.#pending.delete(pending)) continue;
            late++;
            pending.reject(new RedisTimeoutError(timeout));
          }
          if (late > 0) this.#redis.reportTimeout();
        });
      },
      Math.max(5, Math.min(100, Math.floor(timeout / 4))),
    );
    this.#watchdog.unref();
  }

  async #send(key: string, cost: number, now: number, dry: boolean): Promise<Decision> {
    const { head, tail, global } = this.#plan;
    const args = ['EVALSHA', DECIDE_SHA, this.#n];
    for (let i = 0; i < head.length; i++) args.push(global[i] ? (head[i] as string) : `${head[i]}${key}${tail[i]}`);
    args.push(String(now), String(cost), dry ? '1' : '0');
    for (const a of this.#specArgs) args.push(a);
    const client = this.#redis.client;
    const firstKey = args[3];
    try {
      return (await send(client, firstKey, args, UNTIMED)) as Decision;
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
      args[0] = 'EVAL';
      args[1] = DECIDE_SCRIPT;
      return (await send(client, firstKey, args, UNTIMED)) as Decision;
    }
  }

  /** Deletes the per-client keys of `key` (global limits are kept). */
  async reset(key: string): Promise<void> {
    const keys = this.keys(key).filter((_, i) => !this.#plan.global[i]);
    if (keys.length > 0) await send(this.#redis.client, keys[0], ['DEL', ...keys], this.#commandOptions);
  }

  /** Stops listening to connection changes (the shared connection is not ours to close). */
  close(): void {
    this.#statusListener.dispose();
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    for (const pending of this.#pending) pending.reject(new Error('rate limiter closed'));
    this.#pending.clear();
  }

  #load(): void {
    // A cluster spreads keys over nodes: there the first EVAL per node caches the script.
    if (isClusterClient(this.#redis.client)) return;
    send(this.#redis.client, undefined, ['SCRIPT', 'LOAD', DECIDE_SCRIPT], this.#commandOptions).catch(
      (error: unknown) => {
        this.#redis.recordError(error);
      },
    );
  }
}
