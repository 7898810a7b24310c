/**
 * The in-memory store: the default store, and the local limiter that bounds abuse while
 * Redis is unreachable.
 *
 * Built on lru-cache so that memory stays bounded whatever the number of distinct
 * clients (an attacker rotating addresses cannot grow it past `maxKeys` entries). Each key
 * holds one small array of doubles with the state of every per-client limit; global limits
 * share one array. Entries whose windows have all passed are swept on an unref()ed timer,
 * so idle memory is returned too.
 *
 * Blocked clients stay blocked (issue 16): keys live in two LRUs. A key that is over its
 * limit in the current window (denied, inside a `blockDuration`, or at 0 remaining) moves
 * to the *held* LRU (`maxHeldKeys`); every other key lives in the *active* LRU (`maxKeys`).
 * Traffic from other clients only ever evicts from the active LRU, so the least recently
 * seen *unblocked* key goes first and a blocked client cannot shed its block by waiting
 * for 100,000 other keys to pass. The held LRU is bounded on its own: filling it takes
 * `limit + 1` requests per key, and only then does its least recently seen key drop out.
 * A held key whose window rolled over moves back to the active LRU on its next request.
 *
 * Everything here is synchronous: the memory path of the middleware allocates no promise.
 */
import { LRUCache } from 'lru-cache';
import { consume, describe, evaluate, FIXED_WINDOW, type LimitSpec, STATE_SIZE, TOKEN_BUCKET } from '../algorithms.js';
import type { Decision, DecisionStore } from './types.js';

/** Construction parameters of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** The limits, in order. */
  readonly specs: readonly LimitSpec[];
  /** `true` for each limit shared by all clients. */
  readonly global: readonly boolean[];
  /** Most unblocked keys kept. */
  readonly maxKeys: number;
  /** Most keys kept while over their limit (blocked). @default maxKeys */
  readonly maxHeldKeys?: number;
  /** How often stale entries are swept (ms). */
  readonly sweepIntervalMs: number;
  /** The clock the sweep uses. */
  readonly clock: () => number;
}

/** Per-client state: `[expiresAt, ...STATE_SIZE numbers per per-client limit]`. */
type Entry = number[];

/** Every client entry counts as one toward `maxKeys`. */
const entryWeight = (): number => 1;

/** The in-memory decision store (bounded LRU). */
export class MemoryStore implements DecisionStore {
  #specs: readonly LimitSpec[];
  readonly #global: readonly boolean[];
  /** Offset of each limit's state inside its array (client entry or global array). */
  readonly #offset: number[];
  readonly #clientLimits: number;
  readonly #clients: LRUCache<string, Entry>;
  /** Keys over their limit: never evicted by other keys' traffic in {@link #clients}. */
  readonly #held: LRUCache<string, Entry>;
  readonly #globalState: number[];
  readonly #zero: number[];
  readonly #next: number[];
  readonly #out: number[];
  readonly #life: number[] = [0, 0];
  readonly #clock: () => number;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: MemoryStoreOptions) {
    this.#specs = options.specs;
    this.#global = options.global;
    this.#clock = options.clock;
    this.#offset = [];
    let clientLimits = 0;
    let globalLimits = 0;
    for (let i = 0; i < options.specs.length; i++) {
      if (options.global[i]) this.#offset.push(STATE_SIZE * globalLimits++);
      else this.#offset.push(1 + STATE_SIZE * clientLimits++);
    }
    this.#clientLimits = clientLimits;
    // Bounded by count through `maxSize` (each entry weighs 1) rather than `max`: with `max`,
    // lru-cache allocates and fills its arrays for every slot up front (about 17 ms for the
    // default 100,000 keys, paid by every stack built, e.g. one per test); this way they grow
    // with the keys actually seen.
    this.#clients = new LRUCache<string, Entry>({ maxSize: options.maxKeys, sizeCalculation: entryWeight });
    this.#held = new LRUCache<string, Entry>({
      maxSize: options.maxHeldKeys ?? options.maxKeys,
      sizeCalculation: entryWeight,
    });
    this.#globalState = new Array<number>(STATE_SIZE * globalLimits).fill(0);
    this.#zero = new Array<number>(1 + STATE_SIZE * clientLimits).fill(0);
    this.#next = new Array<number>(STATE_SIZE * options.specs.length).fill(0);
    this.#out = new Array<number>(2 + 2 * options.specs.length).fill(0);
    this.#timer = setInterval(() => this.sweep(), options.sweepIntervalMs);
    this.#timer.unref();
  }

  /** Number of client keys kept (active and held). */
  get size(): number {
    return this.#clients.size + this.#held.size;
  }

  /** Number of keys kept because they are over their limit. */
  get heldSize(): number {
    return this.#held.size;
  }

  /**
   * Replaces the limits' numbers (same algorithms and count), keeping every state: the
   * local fallback uses it to admit a share of each limit (`ceil(limit / liveInstances)`).
   */
  setSpecs(specs: readonly LimitSpec[]): void {
    this.#specs = specs;
  }

  /** The limits in force. */
  get specs(): readonly LimitSpec[] {
    return this.#specs;
  }

  /**
   * Marks `key` as blocked until `until` in the limits of `mask` (per-client limits only):
   * the local fallback learns the shared store's refusals, so a client Redis refused stays
   * refused if Redis stops answering before the refusal ends.
   */
  hold(key: string, mask: number, until: number, now: number): void {
    if (this.#clientLimits === 0 || until <= now) return;
    let entry = this.#clients.get(key) ?? this.#held.get(key);
    if (entry === undefined) entry = new Array<number>(1 + STATE_SIZE * this.#clientLimits).fill(0);
    for (let i = 0; i < this.#specs.length; i++) {
      if (this.#global[i] || (mask & (1 << i)) === 0) continue;
      const o = this.#offset[i] as number;
      if ((entry[o + 3] as number) < until) entry[o + 3] = until;
    }
    if ((entry[0] as number) < until) entry[0] = until;
    this.#clients.delete(key);
    this.#held.set(key, entry);
  }

  /**
   * True while `key` has consumption counted here whose windows have not all passed (a
   * key only {@link hold}-ed has none: the shared store already knows about it).
   */
  hasUsage(key: string, now: number): boolean {
    const entry = this.#clients.peek(key) ?? this.#held.peek(key);
    if (entry === undefined || (entry[0] as number) <= now) return false;
    for (let i = 0; i < this.#specs.length; i++) {
      if (this.#global[i]) continue;
      const o = this.#offset[i] as number;
      // Windows: hits in the current/previous window; token bucket: the deficit.
      if ((entry[o + 1] as number) > 0 || (entry[o + 2] as number) > 0) return true;
      if ((this.#specs[i] as LimitSpec).algorithm === TOKEN_BUCKET && (entry[o] as number) > 0) return true;
    }
    return false;
  }

  /**
   * Decides a request. The returned array is reused by the next call: read it at once.
   */
  decide(key: string, cost: number, now: number, dry: boolean): Decision {
    const specs = this.#specs;
    const n = specs.length;
    const next = this.#next;
    const out = this.#out;
    let existing: Entry | undefined;
    let held = false;
    if (this.#clientLimits > 0) {
      existing = this.#clients.get(key);
      if (existing === undefined) {
        existing = this.#held.get(key);
        held = existing !== undefined;
      }
    }
    const entry = existing ?? this.#zero;
    let mask = 0;
    let retry = 0;
    for (let i = 0; i < n; i++) {
      const spec = specs[i] as LimitSpec;
      const r = evaluate(
        spec,
        this.#global[i] ? this.#globalState : entry,
        this.#offset[i] as number,
        cost,
        now,
        next,
        i * STATE_SIZE,
      );
      if (r > 0) {
        mask |= 1 << i;
        if (r > retry) retry = r;
      }
    }
    if (!dry) this.#commit(key, existing, held, mask, cost, now);
    out[0] = mask;
    out[1] = retry;
    // `next` now holds what each limit's state is after this request (consumed or not).
    let over = mask !== 0;
    for (let i = 0; i < n; i++) {
      describe(specs[i] as LimitSpec, next, i * STATE_SIZE, now, out, 2 + 2 * i);
      if (out[2 + 2 * i] === 0 && !this.#global[i]) over = true;
    }
    if (!dry && this.#clientLimits > 0 && over !== held) this.#move(key, over);
    return out;
  }

  /** Moves `key` between the active and the held LRU. */
  #move(key: string, toHeld: boolean): void {
    const from = toHeld ? this.#clients : this.#held;
    const entry = from.get(key);
    if (entry === undefined) return;
    from.delete(key);
    (toHeld ? this.#held : this.#clients).set(key, entry);
  }

  /** Writes the normalised states (consumed when allowed; only new blocks when denied). */
  #commit(key: string, existing: Entry | undefined, held: boolean, mask: number, cost: number, now: number): void {
    const specs = this.#specs;
    const next = this.#next;
    let entry = existing;
    let expiresAt = existing === undefined ? 0 : (existing[0] as number);
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i] as LimitSpec;
      const denied = (mask & (1 << i)) !== 0;
      const no = i * STATE_SIZE;
      // Denied: only a new block is kept (the normalised state then carries no consumption).
      if (mask !== 0 && !(denied && (next[no + 3] as number) > now)) continue;
      if (mask === 0) consume(spec, next, no, cost);
      let target: number[];
      if (this.#global[i]) target = this.#globalState;
      else {
        if (entry === undefined) {
          entry = new Array<number>(1 + STATE_SIZE * this.#clientLimits).fill(0);
          (held ? this.#held : this.#clients).set(key, entry);
        }
        target = entry;
      }
      const o = this.#offset[i] as number;
      target[o] = next[no] as number;
      target[o + 1] = next[no + 1] as number;
      target[o + 2] = next[no + 2] as number;
      target[o + 3] = next[no + 3] as number;
      if (!this.#global[i]) {
        describe(spec, target, o, now, this.#life, 0);
        const until = now + (this.#life[1] as number);
        if (until > expiresAt) expiresAt = until;
      }
    }
    if (entry !== undefined) entry[0] = expiresAt;
  }

  /**
   * Gives back `tokens` a leased block did not use (the cluster hub's leases, store/lease.ts):
   * each fixed-window limit whose window still ends at `ends[i]` (the window the block was
   * taken from) counts `tokens` fewer; a window that rolled over since is left alone.
   */
  refund(key: string, tokens: number, ends: readonly number[], now: number): void {
    const entry = this.#clients.peek(key) ?? this.#held.peek(key);
    if (entry === undefined || tokens <= 0) return;
    for (let i = 0; i < this.#specs.length; i++) {
      const spec = this.#specs[i] as LimitSpec;
      if (this.#global[i] || spec.algorithm !== FIXED_WINDOW) continue;
      const o = this.#offset[i] as number;
      const end = (entry[o] as number) + spec.windowMs;
      const hits = entry[o + 1] as number;
      if (hits > 0 && end === ends[i] && now < end) entry[o + 1] = Math.max(0, hits - tokens);
    }
  }

  /** Forgets the per-client state of `key`. */
  reset(key: string): void {
    this.#clients.delete(key);
    this.#held.delete(key);
  }

  /** Drops entries whose every window has passed. */
  sweep(): void {
    const now = this.#clock();
    for (const lru of [this.#clients, this.#held]) {
      const stale: string[] = [];
      for (const [key, entry] of lru.entries()) if ((entry[0] as number) <= now) stale.push(key);
      for (const key of stale) lru.delete(key);
    }
  }

  /** Stops the sweep timer and drops every entry. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#clients.clear();
    this.#held.clear();
  }
}
