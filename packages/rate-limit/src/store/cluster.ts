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

/**
 * Called once with the hub's decision, or with an error when the hub will not decide (then the
 * limiter decides locally). The decision array is the store's own and is reused: read it
 * during the call, copy it to keep it.
 */
export type DecisionCallback = (error: Error | undefined, decision: Decision) => void;

/** The decisions asked for during one event-loop turn, in order; answered by one message. */
interface Batch {
  readonly seq: number;
  /** Loop time when the batch was opened (the watchdog's clock). */
  readonly at: number;
  readonly callbacks: DecisionCallback[];
}

const NO_DECISION: Decision = [];
/** Batch numbers, unique in the process: every store of a worker hears every `rl-a`. */
let nextSeq = 1;

/**
 * Runs every callback even when one throws (as separate promise reactions did); the first
 * exception is rethrown afterwards, outside the loop.
 */
function callAll(callbacks: readonly DecisionCallback[], error: Error | undefined, decision: Decision): void {
  let thrown: unknown;
  let threw = false;
  for (const done of callbacks) {
    try {
      done(error, decision);
    } catch (e) {
      if (!threw) thrown = e;
      threw = true;
    }
  }
  if (threw) throw thrown;
}

/**
 * The worker's side: decisions are asked of the primary, in batches. What one decision costs
 * the worker (issue 16, measured in benchmarks/RESULTS.md): a callback and three array pushes;
 * per event-loop turn one `setImmediate` and one message `{ t: 'rl-b', ns, s, b: [key, cost,
 * now, ...] }` (`cost` −1: a dry read); per answer one message `{ t: 'rl-a', s, b: [n,
 * ...n numbers, ...] }` read in place into one reused array — no promise, no id and no
 * array per decision.
 */
export class ClusterStore implements DecisionStore {
  readonly #channel: ClusterChannel;
  #definition: ClusterStoreDefinition;
  /** The batch being filled this turn (flushed by `setImmediate`), and its entries. */
  #open: Batch | undefined;
  #entries: Array<string | number> = [];
  /** Batches sent and not answered, oldest first. */
  readonly #inflight = new Map<number, Batch>();
  /** The decision handed to callbacks, refilled for each (see {@link DecisionCallback}). */
  readonly #decision: number[] = [];
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
      channel.on('rl-a', (m) => this.#answer(m)),
      // Another worker reset a key: its counts in the hub are gone, and so must this worker's local ones.
      channel.on('rl-reset', (m) => {
        if (m.ns === definition.ns && typeof m.key === 'string') onRemoteReset(m.key);
      }),
      // A new hub (PM2: the previous one died) has never heard of this limiter.
      channel.onConnect(define),
      // The hub's roster (every second, and on every join): it runs, so stop deciding locally.
      channel.on('roster', () => onHubAlive()),
      // The hub is gone: nothing asked of it will be answered; decide those locally now.
      channel.onDisconnect(() => this.#failAll(new Error('the cluster hub is gone'))),
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

  /** The {@link DecisionStore} form of {@link ask} (a copy of the decision; `getKey`, tests). */
  decide(key: string, cost: number, now: number, dry: boolean): Promise<Decision> {
    return new Promise<Decision>((resolve, reject) => {
      this.ask(key, cost, now, dry, (error, decision) =>
        error === undefined ? resolve([...decision]) : reject(error),
      );
    });
  }

  /**
   * Asks the hub to decide; `done` is called once, later (with an error at once when the hub
   * is unreachable). What the middleware calls on every request.
   */
  ask(key: string, cost: number, now: number, dry: boolean, done: DecisionCallback): void {
    if (!this.#channel.connected) {
      done(new Error('the cluster hub is unreachable'), NO_DECISION);
      return;
    }
    let batch = this.#open;
    if (batch === undefined) {
      batch = { seq: nextSeq++, at: loopNow(), callbacks: [] };
      this.#open = batch;
      setImmediate(this.#flush);
      if (this.#watchdog === undefined) this.#startWatchdog();
    }
    batch.callbacks.push(done);
    this.#entries.push(key, dry ? -1 : cost, now);
  }

  readonly #flush = (): void => {
    const batch = this.#open;
    if (batch === undefined) return; // failed meanwhile (the hub went away)
    this.#open = undefined;
    const entries = this.#entries;
    this.#entries = [];
    this.#inflight.set(batch.seq, batch);
    this.#channel.send({ t: 'rl-b', ns: this.#definition.ns, s: batch.seq, b: entries });
  };

  #answer(m: ClusterMessage): void {
    const batch = this.#inflight.get(m.s as number);
    if (batch === undefined) return; // another limiter's, or already given up on
    this.#inflight.delete(batch.seq);
    const answers = m.b as number[];
    const decision = this.#decision;
    let thrown: unknown;
    let threw = false;
    // `[n, ...n numbers, n, ...]`, one decision per entry of the batch, in order.
    for (let i = 0, c = 0; c < batch.callbacks.length; c++) {
      const n = answers[i] as number;
      decision.length = n;
      for (let j = 0; j < n; j++) decision[j] = answers[i + 1 + j] as number;
      i += 1 + n;
      try {
        (batch.callbacks[c] as DecisionCallback)(undefined, decision);
      } catch (e) {
        if (!threw) thrown = e;
        threw = true;
      }
    }
    if (threw) throw thrown;
  }

  #startWatchdog(): void {
    this.#watchdog = setInterval(() => {
      const now = loopNow();
      for (const batch of this.#inflight.values()) {
        if (now - batch.at < this.#timeout) break; // insertion order
        this.#inflight.delete(batch.seq);
        callAll(batch.callbacks, new ClusterStoreTimeoutError(this.#timeout), NO_DECISION);
      }
      if (this.#inflight.size === 0 && this.#open === undefined && this.#watchdog !== undefined) {
        clearInterval(this.#watchdog);
        this.#watchdog = undefined;
      }
    }, 50);
    this.#watchdog.unref();
  }

  /** Fails every decision not answered yet (sent, or still in this turn's batch). */
  #failAll(error: Error): void {
    const batches = [...this.#inflight.values()];
    if (this.#open !== undefined) batches.push(this.#open);
    this.#inflight.clear();
    this.#open = undefined;
    this.#entries = [];
    for (const batch of batches) callAll(batch.callbacks, error, NO_DECISION);
  }

  reset(key: string): void {
    this.#channel.send({ t: 'rl-reset', ns: this.#definition.ns, key });
  }

  close(): void {
    for (const listener of this.#listeners) listener.dispose();
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    this.#failAll(new Error('rate limiter closed'));
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
    if (message.t !== 'rl-b') return undefined;
    const store = this.#stores.get(message.ns as string);
    if (store === undefined) return undefined; // never defined: the worker's watchdog falls back
    // `[key, cost, now, ...]` in; `[n, ...n numbers, ...]` out, in the same order.
    const batch = message.b as Array<string | number>;
    const out: number[] = [];
    const wallNow = Date.now();
    for (let i = 0; i < batch.length; i += 3) {
      const cost = batch[i + 1] as number;
      const now = batch[i + 2] as number;
      const decision = store.decide(batch[i] as string, Math.max(cost, 0), now < 0 ? wallNow : now, cost < 0);
      out.push(decision.length);
      for (let j = 0; j < decision.length; j++) out.push(decision[j] as number);
    }
    return { ps: 1, t: 'rl-a', s: message.s, b: out };
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
