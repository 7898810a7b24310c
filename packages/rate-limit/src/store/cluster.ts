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
 * Leased quota (issue 16, store/cluster-server.ts): once a key is busy and far from its
 * limit, the hub answers with a block of its budget, and this worker admits from the block
 * with no message at all until it is spent, its window ends or the hub recalls it; then the
 * rest goes back to the hub (`rl-r`, or with the next batch). Only with a hub that offers it
 * (`rl-lease`, the answer to `rl-def`): with a hub of the previous version every decision is
 * the hub's, as before.
 *
 * {@link ClusterStoreServer} is the primary's side (used by `clusterPrimary()`).
 */
import { type ClusterChannel, type ClusterMessage, loopNow } from '@perfstack/core';
import type { LimitSpec } from '../algorithms.js';
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
  /** Leased blocks: `-1` sized by the hub (`lease: 'auto'`), `0` none, else the block size. Absent: none. */
  readonly lease?: number;
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
  /** A callback is cleared once called (a held decision is answered later, on its own). */
  readonly callbacks: Array<DecisionCallback | undefined>;
  /** `[key, cost, now, ...]` as sent (a granted block needs its key). */
  readonly entries: Array<string | number>;
  /** Resets seen when the batch was opened: a block granted before a reset is given back. */
  readonly resets: number;
  /** Decisions not answered yet. */
  pending: number;
}

/** A block of a key's budget this worker decides from (a lease). */
interface Block {
  readonly id: number;
  /** Tokens left. */
  left: number;
  /** When the first of its windows ends: not used from then on. */
  readonly expires: number;
  /** Per limit: the hub's remaining with the whole block counted as used, and the window's end. */
  readonly base: number[];
}

/** Most blocks one limiter holds in a worker; beyond, decisions go to the hub. */
const MAX_BLOCKS = 10_000;
const NO_DECISION: Decision = [];
/** How long `resetKey` waits for the hub to confirm, at most: over the hub's 3 s hold for recalled blocks. */
const RESET_WAIT_MS = 4000;
/** Batch and reset numbers, unique in the process: every store of a worker hears every `rl-a`. */
let nextSeq = 1;

/**
 * Runs every callback even when one throws (as separate promise reactions did); the first
 * exception is rethrown afterwards, outside the loop.
 */
function callAll(
  callbacks: ReadonlyArray<DecisionCallback | undefined>,
  error: Error | undefined,
  decision: Decision,
): void {
  let thrown: unknown;
  let threw = false;
  for (const done of callbacks) {
    if (done === undefined) continue;
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
 * The worker's side: decisions are asked of the primary, in batches, or decided here from a
 * leased block. What one hub decision costs the worker (issue 16, measured in
 * benchmarks/RESULTS.md): a callback and three array pushes; per event-loop turn one
 * `setImmediate` and one message `{ t: 'rl-b', ns, s, b: [key, cost, now, ...] }` (`cost` −1:
 * a dry read; `l: 1` when blocks are welcome; `r`: blocks given back); per answer one message
 * `{ t: 'rl-a', s, b: [n, ...n numbers, ...] }` read in place into one reused array — no
 * promise, no id and no array per decision. A decision from a block costs a `Map` lookup and
 * no message.
 */
export class ClusterStore implements DecisionStore {
  readonly #channel: ClusterChannel;
  #definition: ClusterStoreDefinition;
  /** The batch being filled this turn (flushed by `setImmediate`), and its entries. */
  #open: Batch | undefined;
  #entries: Array<string | number> = [];
  /** Batches sent and not wholly answered, oldest first. */
  readonly #inflight = new Map<number, Batch>();
  /** The decision handed to callbacks, refilled for each (see {@link DecisionCallback}). */
  readonly #decision: number[] = [];
  readonly #timeout: number;
  readonly #listeners: Array<{ dispose(): void }>;
  #watchdog: NodeJS.Timeout | undefined;
  #sweeper: NodeJS.Timeout | undefined;
  /** True once the hub offered blocks (`rl-lease`), until the link drops. */
  #leasing = false;
  readonly #blocks = new Map<string, Block>();
  /** Blocks given back, `[key, leaseId, unused, ...]`, sent with the next flush. */
  #returns: Array<string | number> = [];
  #flushing = false;
  #resets = 0;
  /** `resetKey` calls waiting for the hub's acknowledgement, by number. */
  readonly #resetting = new Map<number, () => void>();

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
    const ns = definition.ns;
    this.#listeners = [
      channel.on('rl-a', (m) => this.#answer(m)),
      channel.on('rl-d', (m) => this.#answerHeld(m)),
      channel.on('rl-lease', (m) => {
        if (m.ns === ns) this.#leasing = true;
      }),
      // The hub would refuse this key while blocks are out: give this worker's back now.
      channel.on('rl-recall', (m) => {
        if (m.ns === ns && typeof m.key === 'string') this.#giveBack(m.key);
      }),
      channel.on('rl-reset-ok', (m) => {
        const done = this.#resetting.get(m.rid as number);
        if (done !== undefined) done();
      }),
      // Another worker reset a key: its counts in the hub are gone, and so must this worker's
      // local ones and its block (given back: the hub waits for every block before resetting).
      channel.on('rl-reset', (m) => {
        if (m.ns !== ns || typeof m.key !== 'string') return;
        this.#resets++;
        this.#giveBack(m.key);
        onRemoteReset(m.key);
      }),
      // A new hub (PM2: the previous one died) has never heard of this limiter.
      channel.onConnect(define),
      // The hub's roster (every second, and on every join): it runs, so stop deciding locally.
      channel.on('roster', () => onHubAlive()),
      // The hub is gone: nothing asked of it will be answered; decide those locally now. Its
      // blocks die with it (a new hub counts afresh).
      channel.onDisconnect(() => {
        this.#leasing = false;
        this.#blocks.clear();
        this.#returns = [];
        for (const done of this.#resetting.values()) done();
        this.#failAll(new Error('the cluster hub is gone'));
      }),
    ];
  }

  /**
   * New limits (runtime settings): kept for a new hub's definition and sent to the hub now,
   * which applies them to the shared counts (`update`); the number of limits never changes.
   * Blocks already held are given back (their remaining was reckoned on the old limit).
   */
  setSpecs(specs: readonly LimitSpec[]): void {
    this.#definition = { ...this.#definition, specs };
    this.#channel.send({ t: 'rl-def', def: this.#definition, update: true });
    for (const key of [...this.#blocks.keys()]) this.#giveBack(key);
  }

  /** True while the link to the hub is open. */
  get connected(): boolean {
    return this.#channel.connected;
  }

  /** Live workers in the hub's last roster: the fallback's share divides the limits by it. */
  get liveWorkers(): number {
    return this.#channel.liveWorkers;
  }

  /** Blocks this worker holds now (tests, stats). */
  get blocks(): number {
    return this.#blocks.size;
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
   * Decides from this worker's block of `key` when it has one that covers `cost` (then `done`
   * is called before this returns), else asks the hub; `done` is called once (with an error at
   * once when the hub is unreachable). What the middleware calls on every request.
   */
  ask(key: string, cost: number, now: number, dry: boolean, done: DecisionCallback): void {
    if (!this.#channel.connected) {
      done(new Error('the cluster hub is unreachable'), NO_DECISION);
      return;
    }
    if (this.#leasing && !dry && this.#blocks.size > 0) {
      const block = this.#blocks.get(key);
      if (block !== undefined) {
        const t = now < 0 ? Date.now() : now;
        if (t < block.expires && block.left >= cost) {
          block.left -= cost;
          done(undefined, this.#fromBlock(block, t));
          return;
        }
        this.#giveBack(key);
      }
    }
    let batch = this.#open;
    if (batch === undefined) {
      this.#entries = [];
      batch = {
        seq: nextSeq++,
        at: loopNow(),
        callbacks: [],
        entries: this.#entries,
        resets: this.#resets,
        pending: 0,
      };
      this.#open = batch;
      this.#schedule();
      if (this.#watchdog === undefined) this.#startWatchdog();
    }
    batch.callbacks.push(done);
    batch.pending++;
    this.#entries.push(key, dry ? -1 : cost, now);
  }

  /** `[0, 0, remaining₀, reset₀, ...]` for a decision made from `block` at `now`. */
  #fromBlock(block: Block, now: number): Decision {
    const decision = this.#decision;
    const base = block.base;
    decision.length = 2 + base.length;
    decision[0] = 0;
    decision[1] = 0;
    for (let i = 0; i < base.length; i += 2) {
      decision[2 + i] = (base[i] as number) + block.left;
      decision[3 + i] = (base[i + 1] as number) - now;
    }
    return decision;
  }

  /** Drops this worker's block of `key` and sends back what is left of it (with the next flush). */
  #giveBack(key: string): void {
    const block = this.#blocks.get(key);
    if (block === undefined) return;
    this.#blocks.delete(key);
    this.#returns.push(key, block.id, block.left);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    setImmediate(this.#flush);
  }

  readonly #flush = (): void => {
    this.#flushing = false;
    const returns = this.#returns;
    if (returns.length > 0) this.#returns = [];
    const batch = this.#open;
    const ns = this.#definition.ns;
    if (batch === undefined) {
      // Blocks given back with no decision to ask.
      if (returns.length > 0) this.#channel.send({ t: 'rl-r', ns, r: returns });
      return;
    }
    this.#open = undefined;
    this.#inflight.set(batch.seq, batch);
    const message: Record<string, unknown> = { t: 'rl-b', ns, s: batch.seq, b: batch.entries };
    if (this.#leasing) {
      // Returns first (the hub credits them before it decides the batch).
      if (returns.length > 0) message.r = returns;
      if (this.#blocks.size < MAX_BLOCKS) message.l = 1;
    }
    this.#channel.send(message as Omit<ClusterMessage, 'ps'>);
  };

  #answer(m: ClusterMessage): void {
    const batch = this.#inflight.get(m.s as number);
    if (batch === undefined) return; // another limiter's, or already given up on
    const answers = m.b as number[];
    const decision = this.#decision;
    const size = 2 + 2 * this.#definition.specs.length;
    let thrown: unknown;
    let threw = false;
    // `[n, ...n numbers, n, ...]`, one decision per entry of the batch, in order; n −1: held
    // by the hub (answered later by `rl-d`); n = size + 3: a block granted, `[block, id, now]`.
    for (let i = 0, c = 0; c < batch.callbacks.length; c++) {
      const n = answers[i] as number;
      if (n < 0) {
        i += 1;
        continue;
      }
      const d = Math.min(n, size);
      decision.length = d;
      for (let j = 0; j < d; j++) decision[j] = answers[i + 1 + j] as number;
      if (n > size) this.#take(batch, c, answers, i + 1 + size);
      i += 1 + n;
      const done = batch.callbacks[c];
      batch.callbacks[c] = undefined;
      batch.pending--;
      try {
        (done as DecisionCallback)(undefined, decision);
      } catch (e) {
        if (!threw) thrown = e;
        threw = true;
      }
    }
    if (batch.pending === 0) this.#inflight.delete(batch.seq);
    if (threw) throw thrown;
  }

  /** Keeps the block granted with decision `c` of `batch` (in {@link #decision}), or gives it straight back. */
  #take(batch: Batch, c: number, answers: number[], at: number): void {
    const key = batch.entries[3 * c] as string;
    const size = answers[at] as number;
    const id = answers[at + 1] as number;
    const hubNow = answers[at + 2] as number;
    const decision = this.#decision;
    const base: number[] = [];
    let expires = Number.POSITIVE_INFINITY;
    for (let i = 2; i < decision.length; i += 2) {
      const end = hubNow + (decision[i + 1] as number);
      base.push((decision[i] as number) - size, end);
      if (end < expires) expires = end;
    }
    const block: Block = { id, left: size, expires, base };
    if (this.#blocks.has(key)) this.#giveBack(key);
    this.#blocks.set(key, block);
    if (this.#sweeper === undefined) {
      // Blocks whose window ended go back once a second (a key that stopped coming; the hub
      // credits the longer windows of the same block), so idle keys do not fill MAX_BLOCKS.
      this.#sweeper = setInterval(() => {
        const wall = Date.now();
        for (const [k, b] of this.#blocks) if (b.expires <= wall) this.#giveBack(k);
        if (this.#blocks.size === 0 && this.#sweeper !== undefined) {
          clearInterval(this.#sweeper);
          this.#sweeper = undefined;
        }
      }, 1000);
      this.#sweeper.unref();
    }
    // Granted before a reset this worker heard of, or while the hub went away: not ours to use.
    if (batch.resets !== this.#resets || !this.#leasing) this.#giveBack(key);
  }

  /** A decision the hub held while blocks came back: `{ s, i, d }`. */
  #answerHeld(m: ClusterMessage): void {
    const batch = this.#inflight.get(m.s as number);
    const done = batch?.callbacks[m.i as number];
    if (batch === undefined || done === undefined) return;
    batch.callbacks[m.i as number] = undefined;
    if (--batch.pending === 0) this.#inflight.delete(batch.seq);
    const answer = m.d as number[];
    const decision = this.#decision;
    decision.length = answer.length;
    for (let j = 0; j < answer.length; j++) decision[j] = answer[j] as number;
    done(undefined, decision);
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

  /**
   * Forgets `key` in the hub (and in every worker's local fallback). With leases, resolves
   * once the hub has every block of the key back and has forgotten it (at most 2 s); otherwise
   * at once.
   */
  reset(key: string): Promise<void> {
    this.#resets++;
    const ns = this.#definition.ns;
    if (!this.#leasing) {
      this.#channel.send({ t: 'rl-reset', ns, key });
      return Promise.resolve();
    }
    this.#giveBack(key);
    const rid = nextSeq++;
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#resetting.delete(rid);
        resolve();
      };
      // Longer than the hub's hold for recalled blocks (3 s, ClusterStoreServer's holdMs): a
      // stalled holder delays the reset by up to that, and resetKey resolves once it is done.
      const timer = setTimeout(done, RESET_WAIT_MS);
      timer.unref();
      this.#resetting.set(rid, done);
      this.#channel.send({ t: 'rl-reset', ns, key, rid });
    });
  }

  close(): void {
    for (const listener of this.#listeners) listener.dispose();
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog);
    this.#watchdog = undefined;
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const key of [...this.#blocks.keys()]) this.#giveBack(key);
    if (this.#returns.length > 0) {
      this.#channel.send({ t: 'rl-r', ns: this.#definition.ns, r: this.#returns });
      this.#returns = [];
    }
    for (const done of this.#resetting.values()) done();
    this.#failAll(new Error('rate limiter closed'));
  }
}

export { ClusterStoreServer } from './cluster-server.js';
