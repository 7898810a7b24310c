/**
 * The cluster hub's side of the rate-limit store (the `node:cluster` primary, or PM2's hub
 * process): one {@link MemoryStore} per limiter namespace, shared by every worker, and the
 * **leased quota** that lets a worker decide a busy key on its own (issue 16).
 *
 * Leases, and why the fleet stays exact:
 * - **Grant.** While a key is far from its limit, the hub answers a worker's decision with a
 *   block of `B` more of the key's budget, counted as used at once. The worker then admits from
 *   the block without a message, until it is spent or its window ends, then gives back what is
 *   left (`rl-r`, or with its next batch) and asks again. A key gets blocks once it has used `B`
 *   in its window (a client that sends a few requests costs no block), and only while every
 *   limit keeps `liveWorkers × B` after the block (the reserve, decided one by one by the hub).
 * - **Never more than the limit**: a block is counted as used from the moment it is granted, and
 *   the worker admits only from the tokens it holds, in the window they were taken from.
 * - **Never fewer while requests come**: when the hub would refuse a key while blocks of it are
 *   out, it holds that decision (and the key's later ones, in order), recalls the blocks
 *   (`rl-recall`), credits what comes back to the window it was taken from, and then decides the
 *   held ones (`rl-d`). No block of that key is granted again in that window.
 * - **A worker that dies holding a block**: the block counts as used (it is not reclaimed). The
 *   hub cannot know how much of it the worker admitted before it died, and reclaiming it could
 *   admit more than the limit; counting it costs at most the block's unused part, once. A worker
 *   that does not give a recalled block back within `holdMs` (stopped, or starved) is treated
 *   the same way for that decision.
 * - **`resetKey`** waits for the key's blocks to come back (every worker drops its block on the
 *   reset), then forgets the key and acknowledges (`rl-reset-ok`): once it resolves, no block
 *   of the old count is in use anywhere.
 *
 * Leases apply to limiters whose limits are all per-client fixed windows (the default): in a
 * sliding window a token returned after the window turned still weighs on the next one, and a
 * bucket refills continuously, so a returned token is not worth what was taken.
 */
import type { ClusterMessage } from '@perfstack/core';
import { FIXED_WINDOW } from '../algorithms.js';
import type { ClusterStoreDefinition } from './cluster.js';
import { MemoryStore } from './memory.js';

/** A worker as the hub's store sees it: recalls and held answers are sent to it. */
export interface StorePeer {
  readonly id: number;
  send(message: ClusterMessage): void;
}

/** Options of {@link ClusterStoreServer}. */
export interface ClusterStoreServerOptions {
  /** Live workers: the automatic block size and the reserve divide by it. @default () => 1 */
  readonly peers?: () => number;
  /** ms a decision is held for recalled blocks before they count as used. @default 3000 (under the workers' 5 s: a held decision is still answered by the hub) */
  readonly holdMs?: number;
}

/** `lease: 'auto'`: `floor(smallest limit / (8 × liveWorkers))`, at most this many. */
export const MAX_AUTO_BLOCK = 1000;
/** `lease: 'auto'` leases nothing when the block would be smaller than this. */
export const MIN_AUTO_BLOCK = 4;

interface Lease {
  readonly id: number;
  /** Absolute end of each limit's window the block was taken from. */
  readonly ends: readonly number[];
  /** The last of them: after it the block is worth nothing anywhere. */
  readonly last: number;
}

interface Held {
  readonly peer: StorePeer;
  readonly s: number;
  readonly i: number;
  readonly cost: number;
  /** The worker's clock, or -1: the hub's clock when it is decided. */
  readonly now: number;
}

/** A key that has (or had, this window) blocks out. */
interface LeasedKey {
  readonly records: Map<number, Lease>;
  held: Held[];
  resets: Array<{ readonly peer: StorePeer | undefined; readonly rid: unknown }>;
  timer: NodeJS.Timeout | undefined;
  /** No block of this key is granted before this time (it came near its limit this window). */
  noLeaseUntil: number;
}

interface Namespace {
  readonly store: MemoryStore;
  def: ClusterStoreDefinition;
  /** Every limit a per-client fixed window. */
  readonly leasable: boolean;
  readonly leases: Map<string, LeasedKey>;
}

let nextLeaseId = 1;

/** The primary's side: one memory store per limiter namespace, shared by every worker, and its leases. */
export class ClusterStoreServer {
  readonly #spaces = new Map<string, Namespace>();
  /** Workers that hold (or held) blocks, by id. */
  readonly #peers = new Map<number, StorePeer>();
  readonly #liveWorkers: () => number;
  readonly #holdMs: number;
  readonly #sweep: NodeJS.Timeout;
  /** True while a batch is decided: its recalls wait for its answer ({@link #recalls}). */
  #deciding = false;
  readonly #recalls: Array<[StorePeer, ClusterMessage]> = [];

  constructor(options: ClusterStoreServerOptions = {}) {
    this.#liveWorkers = options.peers ?? (() => 1);
    this.#holdMs = options.holdMs ?? 3000;
    this.#sweep = setInterval(() => this.#sweepLeases(), 5000);
    this.#sweep.unref();
  }

  /**
   * Handles one message from a worker; returns the answer to send back, if any. Without
   * `peer` (a caller that cannot send later messages) no block is granted.
   */
  handle(message: ClusterMessage, peer?: StorePeer): ClusterMessage | undefined {
    switch (message.t) {
      case 'rl-def':
        return this.#define(message, peer);
      case 'rl-reset':
        return this.#reset(message, peer);
      case 'rl-r': {
        const ns = this.#spaces.get(message.ns as string);
        if (ns !== undefined && peer !== undefined) this.#takeBack(ns, peer, message.r);
        return undefined;
      }
      case 'rl-b':
        return this.#decideBatch(message, peer);
      default:
        return undefined;
    }
  }

  #define(message: ClusterMessage, peer: StorePeer | undefined): ClusterMessage | undefined {
    const def = message.def as ClusterStoreDefinition;
    let ns = this.#spaces.get(def.ns);
    if (ns !== undefined && message.update === true) {
      ns.store.setSpecs(def.specs);
      ns.def = { ...ns.def, specs: def.specs };
    } else if (ns === undefined) {
      ns = {
        store: new MemoryStore({
          specs: def.specs,
          global: def.global,
          maxKeys: def.maxKeys,
          maxHeldKeys: def.maxHeldKeys,
          sweepIntervalMs: Math.max(1000, Math.min(60_000, ...def.specs.map((s) => s.windowMs))),
          clock: Date.now,
        }),
        def,
        leasable: def.specs.every((s, i) => s.algorithm === FIXED_WINDOW && !def.global[i]),
        leases: new Map(),
      };
      this.#spaces.set(def.ns, ns);
    }
    // Tells the worker it may ask for blocks (a hub of the previous version never says so, and
    // a worker of the previous version ignores it).
    if (peer === undefined || !ns.leasable || typeof def.lease !== 'number' || def.lease === 0) return undefined;
    this.#peers.set(peer.id, peer);
    return { ps: 1, t: 'rl-lease', ns: def.ns };
  }

  /** `[key, cost, now, ...]` in; `[n, ...n numbers, ...]` out, in the same order (n −1: held, answered by `rl-d`). */
  #decideBatch(message: ClusterMessage, peer: StorePeer | undefined): ClusterMessage | undefined {
    const ns = this.#spaces.get(message.ns as string);
    if (ns === undefined) return undefined; // never defined: the worker's watchdog falls back
    if (peer !== undefined && message.r !== undefined) this.#takeBack(ns, peer, message.r);
    const store = ns.store;
    const batch = message.b as Array<string | number>;
    const out: number[] = [];
    const wallNow = Date.now();
    const block = message.l === 1 && peer !== undefined ? this.#blockSize(ns) : 0;
    const leases = ns.leases;
    this.#deciding = true;
    for (let i = 0; i < batch.length; i += 3) {
      const key = batch[i] as string;
      const cost = batch[i + 1] as number;
      const sent = batch[i + 2] as number;
      const now = sent < 0 ? wallNow : sent;
      const dry = cost < 0;
      if (leases.size > 0 && !dry && peer !== undefined) {
        const leased = leases.get(key);
        if (leased !== undefined && this.#mustHold(ns, leased, key, cost, now)) {
          leased.held.push({ peer, s: message.s as number, i: i / 3, cost, now: sent });
          out.push(-1);
          continue;
        }
      }
      const decision = store.decide(key, Math.max(cost, 0), now, dry);
      const at = out.length;
      out.push(decision.length);
      for (let j = 0; j < decision.length; j++) out.push(decision[j] as number);
      if (block > 0 && !dry && decision[0] === 0) this.#grant(ns, peer as StorePeer, key, block, now, out, at);
    }
    this.#deciding = false;
    const answer: ClusterMessage = { ps: 1, t: 'rl-a', s: message.s, b: out };
    if (peer === undefined || this.#recalls.length === 0) return answer;
    // Recalls made while deciding go after the answer, which may carry a block they recall.
    peer.send(answer);
    for (const [to, recall] of this.#recalls.splice(0)) to.send(recall);
    return undefined;
  }

  /** The block size for this limiter now (0: no leases). */
  #blockSize(ns: Namespace): number {
    const lease = ns.def.lease;
    if (!ns.leasable || typeof lease !== 'number' || lease === 0) return 0;
    if (lease > 0) return lease;
    let smallest = Number.POSITIVE_INFINITY;
    for (const spec of ns.store.specs) if (spec.limit < smallest) smallest = spec.limit;
    const block = Math.min(MAX_AUTO_BLOCK, Math.floor(smallest / (8 * Math.max(1, this.#liveWorkers()))));
    return block >= MIN_AUTO_BLOCK ? block : 0;
  }

  /**
   * After an admitted decision (its numbers at `out[at]`): grants `peer` a block of `block`
   * when the key is busy (has used a block's worth) and far from every limit (keeps the
   * reserve after the block). The answer then carries `[block, leaseId, now]` after the
   * decision's numbers.
   */
  #grant(ns: Namespace, peer: StorePeer, key: string, block: number, now: number, out: number[], at: number): void {
    let leased = ns.leases.get(key);
    if (leased !== undefined) {
      if (leased.records.has(peer.id) || leased.noLeaseUntil > now || leased.resets.length > 0) return;
      if (leased.held.length > 0) return;
    }
    const specs = ns.store.specs;
    const reserve = block * Math.max(1, this.#liveWorkers());
    let busy = false;
    let firstEnd = Number.POSITIVE_INFINITY;
    for (let i = 0; i < specs.length; i++) {
      const remaining = out[at + 3 + 2 * i] as number;
      const end = now + (out[at + 4 + 2 * i] as number);
      if (end < firstEnd) firstEnd = end;
      if ((specs[i]?.limit as number) - remaining >= block) busy = true;
      if (remaining - block < reserve) {
        // Near the limit: no more blocks of this key in this window.
        if (leased !== undefined) leased.noLeaseUntil = firstEnd;
        return;
      }
    }
    if (!busy) return;
    ns.store.decide(key, block, now, false); // fits: every limit keeps the reserve after it
    const ends: number[] = [];
    let last = 0;
    for (let i = 0; i < specs.length; i++) {
      const end = now + (out[at + 4 + 2 * i] as number);
      ends.push(end);
      if (end > last) last = end;
    }
    if (leased === undefined) {
      leased = { records: new Map(), held: [], resets: [], timer: undefined, noLeaseUntil: 0 };
      ns.leases.set(key, leased);
    }
    const id = nextLeaseId++;
    leased.records.set(peer.id, { id, ends, last });
    this.#peers.set(peer.id, peer);
    out[at] = (out[at] as number) + 3;
    out.push(block, id, now);
  }

  /**
   * True when a decision on a key with blocks out must wait for them: it would be refused now
   * (blocks count as used), or earlier decisions of the key already wait. Recalls the blocks.
   */
  #mustHold(ns: Namespace, leased: LeasedKey, key: string, cost: number, now: number): boolean {
    for (const [id, lease] of leased.records) if (lease.last <= now) leased.records.delete(id);
    if (leased.records.size === 0) {
      // The last blocks' windows are over: what waited is decided first, in order.
      if (leased.held.length > 0 || leased.resets.length > 0) this.#settle(ns, leased, key);
      return false;
    }
    if (leased.held.length === 0) {
      const decision = ns.store.decide(key, Math.max(cost, 0), now, true);
      if (decision[0] === 0) return false;
      // Near the limit: no more blocks of it until this window ends.
      let firstEnd = Number.POSITIVE_INFINITY;
      for (let i = 2; i < decision.length; i += 2) firstEnd = Math.min(firstEnd, now + (decision[i + 1] as number));
      leased.noLeaseUntil = Math.max(leased.noLeaseUntil, firstEnd);
    }
    this.#recall(ns, leased, key);
    return true;
  }

  /** Asks every holder of a block of `key` to give it back; after `holdMs` the rest count as used. */
  #recall(ns: Namespace, leased: LeasedKey, key: string): void {
    if (leased.timer !== undefined) return;
    const message: ClusterMessage = { ps: 1, t: 'rl-recall', ns: ns.def.ns, key };
    for (const peerId of leased.records.keys()) {
      const peer = this.#peers.get(peerId);
      if (peer === undefined) continue;
      if (this.#deciding) this.#recalls.push([peer, message]);
      else peer.send(message);
    }
    leased.timer = setTimeout(() => {
      leased.timer = undefined;
      leased.records.clear(); // not back in time: counted as used
      this.#settle(ns, leased, key);
    }, this.#holdMs);
    leased.timer.unref();
  }

  /** Blocks given back: `[key, leaseId, unused, ...]`. */
  #takeBack(ns: Namespace, peer: StorePeer, returns: unknown): void {
    if (!Array.isArray(returns)) return;
    const now = Date.now();
    for (let i = 0; i + 2 < returns.length; i += 3) {
      const key = returns[i] as string;
      const leased = ns.leases.get(key);
      const lease = leased?.records.get(peer.id);
      if (leased === undefined || lease === undefined || lease.id !== returns[i + 1]) continue; // counted already
      leased.records.delete(peer.id);
      const unused = returns[i + 2];
      if (typeof unused === 'number' && unused > 0) ns.store.refund(key, unused, lease.ends, now);
      if (leased.records.size === 0) this.#settle(ns, leased, key);
    }
  }

  /** Every block of the key is back (or counted): pending resets, then the held decisions, in order. */
  #settle(ns: Namespace, leased: LeasedKey, key: string): void {
    if (leased.records.size > 0) return;
    if (leased.timer !== undefined) clearTimeout(leased.timer);
    leased.timer = undefined;
    if (leased.resets.length > 0) {
      ns.store.reset(key);
      leased.noLeaseUntil = 0;
      for (const { peer, rid } of leased.resets.splice(0)) {
        if (peer !== undefined && rid !== undefined) peer.send({ ps: 1, t: 'rl-reset-ok', rid });
      }
    }
    const held = leased.held;
    leased.held = [];
    for (const h of held) {
      const decision = ns.store.decide(key, Math.max(h.cost, 0), h.now < 0 ? Date.now() : h.now, false);
      h.peer.send({ ps: 1, t: 'rl-d', s: h.s, i: h.i, d: [...decision] });
    }
    if (leased.noLeaseUntil <= Date.now()) ns.leases.delete(key);
  }

  /** `resetKey`: once every block of the key is back, the key is forgotten and the worker told. */
  #reset(message: ClusterMessage, peer: StorePeer | undefined): ClusterMessage | undefined {
    const ns = this.#spaces.get(message.ns as string);
    const key = message.key as string;
    const rid = message.rid;
    const leased = ns?.leases.get(key);
    if (ns !== undefined && leased !== undefined && leased.records.size > 0) {
      leased.resets.push({ peer, rid });
      this.#recall(ns, leased, key);
      return undefined;
    }
    ns?.store.reset(key);
    if (leased !== undefined) leased.noLeaseUntil = 0;
    return rid === undefined ? undefined : { ps: 1, t: 'rl-reset-ok', rid };
  }

  /** A worker is gone: its blocks count as used (see the module comment), its held decisions are dropped. */
  leave(peerId: number): void {
    this.#peers.delete(peerId);
    for (const ns of this.#spaces.values()) {
      for (const [key, leased] of ns.leases) {
        leased.held = leased.held.filter((h) => h.peer.id !== peerId);
        if (leased.records.delete(peerId) && leased.records.size === 0) this.#settle(ns, leased, key);
      }
    }
  }

  /** Drops blocks whose every window has ended, and keys with nothing left. */
  #sweepLeases(): void {
    const now = Date.now();
    for (const ns of this.#spaces.values()) {
      for (const [key, leased] of ns.leases) {
        let dropped = false;
        for (const [id, lease] of leased.records) {
          if (lease.last <= now) {
            leased.records.delete(id);
            dropped = true;
          }
        }
        if (leased.records.size > 0) continue;
        if (dropped || leased.held.length > 0 || leased.resets.length > 0) this.#settle(ns, leased, key);
        else if (leased.noLeaseUntil <= now) ns.leases.delete(key);
      }
    }
  }

  /** Blocks out now, over every limiter (the hub's health, tests). */
  leases(): number {
    let out = 0;
    for (const ns of this.#spaces.values()) for (const leased of ns.leases.values()) out += leased.records.size;
    return out;
  }

  /** Limiter namespaces and keys held (for the primary's own health). */
  stats(): { namespaces: number; keys: number } {
    let keys = 0;
    for (const ns of this.#spaces.values()) keys += ns.store.size;
    return { namespaces: this.#spaces.size, keys };
  }

  close(): void {
    clearInterval(this.#sweep);
    for (const ns of this.#spaces.values()) {
      for (const leased of ns.leases.values()) if (leased.timer !== undefined) clearTimeout(leased.timer);
      ns.store.close();
    }
    this.#spaces.clear();
  }
}
