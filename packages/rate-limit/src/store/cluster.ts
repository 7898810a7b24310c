/**
 * The `node:cluster` store: every worker's decisions are made by one {@link MemoryStore} in
 * the primary (`clusterPrimary()` from `perfstack/cluster`), reached over the cluster IPC
 * channel — so N workers on one machine enforce one limit exactly, without Redis.
 * rate-limiter-flexible's `RateLimiterCluster` is the prior art; the differences: all limits
 * of a request in one decision (the same all-or-nothing contract as the other stores), and
 * requests are batched — every decision asked for during one event-loop turn travels in one
 * IPC message, and the primary answers each batch with one message — so the per-request
 * cost is a few array pushes, not one `process.send` (JSON + a syscall) per request.
 *
 * {@link ClusterStoreServer} is the primary's side (used by `clusterPrimary()`).
 */
import { type ClusterChannel, type ClusterMessage, loopNow } from '@perfstack/core';
import type { LimitSpec } from '../algorithms.js';
import { MemoryStore } from './memory.js';
import type { Decision, DecisionStore } from './types.js';

/** A decision the primary did not answer in time. */
export class ClusterStoreTimeoutError extends Error {
  override readonly name = 'ClusterStoreTimeoutError';
  constructor(timeout: number) {
    super(`the cluster primary did not decide within ${timeout}ms`);
  }
}

/** What a worker tells the primary about one limiter (`rl-def`). */
export interface ClusterStoreDefinition {
  readonly ns: string;
  readonly specs: readonly LimitSpec[];
  readonly global: readonly boolean[];
  readonly maxKeys: number;
  readonly maxHeldKeys: number;
}

interface Pending {
  readonly at: number;
  readonly resolve: (decision: Decision) => void;
  readonly reject: (error: unknown) => void;
}

let nextId = 1;

/** The worker's side: decisions are asked of the primary, in batches. */
export class ClusterStore implements DecisionStore {
  readonly #channel: ClusterChannel;
  #definition: ClusterStoreDefinition;
  readonly #pending = new Map<number, Pending>();
  /** Flat batch: `[id, key, cost, now, dry, ...]`. */
  #batch: unknown[] = [];
  #flushScheduled = false;
  readonly #timeout: number;
  readonly #listeners: Array<{ dispose(): void }>;
  #watchdog: NodeJS.Timeout | undefined;

  /**
   * @param timeout ms of loop time before a decision counts as failed (the limiter then
   *   decides locally, at its share). Generous: a live hub on a busy machine is worth waiting
   *   for — only it is exact — and a dead one is noticed at once (the pipe or socket closes).
   * @param onRemoteReset called when another worker reset a key of this limiter
   * @param onHubAlive called whenever the hub shows it runs (its roster)
   */
  constructor(
    channel: ClusterChannel,
    definition: ClusterStoreDefinition,
    timeout = 2000,
    onRemoteReset: (key: string) => void = () => {},
    onHubAlive: () => void = () => {},
  ) {
    this.#channel = channel;
    this.#definition = definition;
    this.#timeout = timeout;
    const define = () => channel.send({ t: 'rl-def', def: this.#definition });
    define();
    this.#listeners = [
      channel.on('rl-r', (m) => this.#answer(m)),
      // Another worker reset a key: its counts in the hub are gone, and so must this worker's local ones.
      channel.on('rl-reset', (m) => {
        if (m.ns === definition.ns && typeof m.key === 'string') onRemoteReset(m.key);
      }),
      // A new hub (PM2: the previous one died) has never heard of this limiter.
      channel.onConnect(define),
      // The hub's roster (every second, and on every join): it runs, so stop deciding locally.
      channel.on('roster', () => onHubAlive()),
      // The hub is gone: nothing asked of it will be answered; decide those locally now.
      channel.onDisconnect(() => this.#rejectAll(new Error('the cluster hub is gone'))),
    ];
  }

  /**
   * New limits (runtime settings): kept for a new hub's definition and sent to the hub now,
   * which applies them to the shared counts (`update`); the number of limits never changes.
   */
  setSpecs(specs: readonly LimitSpec[]): void {
    this.#definition = { ...this.#definition, specs };
    this.#channel.send({ t: 'rl-def', def: this.#definition, update: true });
  }

  /** True while the link to the hub is open. */
  get connected(): boolean {
    return this.#channel.connected;
  }

  /** Live workers in the hub's last roster: the fallback's share divides the limits by it. */
  get liveWorkers(): number {
    return this.#channel.liveWorkers;
  }

  decide(key: string, cost: number, now: number, dry: boolean): Promise<Decision> {
    if (!this.#channel.connected) return Promise.reject(new Error('the cluster hub is unreachable'));
    return new Promise<Decision>((resolve, reject) => {
      const id = nextId++;
      this.#pending.set(id, { at: loopNow(), resolve, reject });
      this.#batch.push(id, key, cost, now, dry ? 1 : 0);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(this.#flush);
      }
      if (this.#watchdog === undefined) this.#startWatchdog();
    });
  }

  readonly #flush = (): void => {
    this.#flushScheduled = false;
    const batch = this.#batch;
    this.#batch = [];
    this.#channel.send({ t: 'rl', ns: this.#definition.ns, b: batch });
  };

  #answer(m: ClusterMessage): void {
    const answers = m.b as unknown[];
    // `[id, n, ...n numbers, id, n, ...]`
    for (let i = 0; i < answers.length; ) {
      const id = answers[i] as number;
      const n = answers[i + 1] as number;
      const pending = this.#pending.get(id);
      if (pending !== undefined) {
        this.#pending.delete(id);
        pending.resolve(answers.slice(i + 2, i + 2 + n) as number[]);
      }
      i += 2 + n;
    }
  }

  #startWatchdog(): void {
    this.#watchdog = setInterval(() => {
      const now = loopNow();
      for (const [id, pending] of this.#pending) {
        if (now - pending.at < this.#timeout) break; // insertion order
        this.#pending.delete(id);
        pending.reject(new ClusterStoreTimeoutError(this.#timeout));
      }
      if (this.#pending.size === 0 && this.#watchdog !== undefined) {
        clearInterval(this.#watchdog);
        this.#watchdog = undefined;
      }
    }, 50);
    this.#watchdog.unref();
  }

  #rejectAll(error: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#batch = [];
    for (const p of pending) p.reject(error);
  }

  reset(key: string): void {
    this.#channel.send({ t: 'rl-reset', ns: this.#definition.ns, key });
  }

  close(): void {
    for (const listener of this.#listeners) listener.dispose();
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    for (const pending of this.#pending.values()) pending.reject(new Error('rate limiter closed'));
    this.#pending.clear();
  }
}

/** The primary's side: one memory store per limiter namespace, shared by every worker. */
export class ClusterStoreServer {
  readonly #stores = new Map<string, MemoryStore>();

  /** Handles one message from a worker; returns the answer to send back, if any. */
  handle(message: ClusterMessage): ClusterMessage | undefined {
    if (message.t === 'rl-def') {
      const def = message.def as ClusterStoreDefinition;
      const known = this.#stores.get(def.ns);
      if (known !== undefined && message.update === true) known.setSpecs(def.specs);
      else if (known === undefined) {
        this.#stores.set(
          def.ns,
          new MemoryStore({
            specs: def.specs,
            global: def.global,
            maxKeys: def.maxKeys,
            maxHeldKeys: def.maxHeldKeys,
            sweepIntervalMs: Math.max(1000, Math.min(60_000, ...def.specs.map((s) => s.windowMs))),
            clock: Date.now,
          }),
        );
      }
      return undefined;
    }
    if (message.t === 'rl-reset') {
      this.#stores.get(message.ns as string)?.reset(message.key as string);
      return undefined;
    }
    if (message.t !== 'rl') return undefined;
    const store = this.#stores.get(message.ns as string);
    const batch = message.b as unknown[];
    const out: number[] = [];
    const wallNow = Date.now();
    for (let i = 0; i < batch.length; i += 5) {
      const id = batch[i] as number;
      if (store === undefined) continue; // never defined: the worker's watchdog falls back
      const now = batch[i + 3] as number;
      const decision = store.decide(
        batch[i + 1] as string,
        batch[i + 2] as number,
        now < 0 ? wallNow : now,
        batch[i + 4] === 1,
      );
      out.push(id, decision.length);
      for (let j = 0; j < decision.length; j++) out.push(decision[j] as number);
    }
    return { ps: 1, t: 'rl-r', b: out };
  }

  /** Limiter namespaces and keys held (for the primary's own health). */
  stats(): { namespaces: number; keys: number } {
    let keys = 0;
    for (const store of this.#stores.values()) keys += store.size;
    return { namespaces: this.#stores.size, keys };
  }

  close(): void {
    for (const store of this.#stores.values()) store.close();
    this.#stores.clear();
  }
}
