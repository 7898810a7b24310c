/**
 * The in-memory store: the default store, and the local limiter that bounds abuse while
 * Redis is unreachable.
 *
 * Built on lru-cache so that memory stays bounded whatever the number of distinct
 * clients (an attacker rotating addresses cannot grow it past `maxKeys` entries): the
 * least recently seen key is dropped first. Each key holds one small array of doubles with
 * the state of every per-client limit; global limits share one array. Entries whose
 * windows have all passed are swept on an unref()ed timer, so idle memory is returned too.
 *
 * Everything here is synchronous: the memory path of the middleware allocates no promise.
 */
import { LRUCache } from 'lru-cache';
import { consume, describe, evaluate, type LimitSpec, STATE_SIZE } from '../algorithms.js';
import type { Decision, DecisionStore } from './types.js';

/** Construction parameters of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** The limits, in order. */
  readonly specs: readonly LimitSpec[];
  /** `true` for each limit shared by all clients. */
  readonly global: readonly boolean[];
  /** Most keys kept. */
  readonly maxKeys: number;
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
  readonly #specs: readonly LimitSpec[];
  readonly #global: readonly boolean[];
  /** Offset of each limit's state inside its array (client entry or global array). */
  readonly #offset: number[];
  readonly #clientLimits: number;
  readonly #clients: LRUCache<string, Entry>;
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
    this.#globalState = new Array<number>(STATE_SIZE * globalLimits).fill(0);
    this.#zero = new Array<number>(1 + STATE_SIZE * clientLimits).fill(0);
    this.#next = new Array<number>(STATE_SIZE * options.specs.length).fill(0);
    this.#out = new Array<number>(2 + 2 * options.specs.length).fill(0);
    this.#timer = setInterval(() => this.sweep(), options.sweepIntervalMs);
    this.#timer.unref();
  }

  /** Number of client keys held. */
  get size(): number {
    return this.#clients.size;
  }

  /**
   * Decides a request. The returned array is reused by the next call: read it at once.
   */
  decide(key: string, cost: number, now: number, dry: boolean): Decision {
    const specs = this.#specs;
    const n = specs.length;
    const next = this.#next;
    const out = this.#out;
    const existing = this.#clientLimits > 0 ? this.#clients.get(key) : undefined;
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
    if (!dry) this.#commit(key, existing, mask, cost, now);
    out[0] = mask;
    out[1] = retry;
    // `next` now holds what each limit's state is after this request (consumed or not).
    for (let i = 0; i < n; i++) describe(specs[i] as LimitSpec, next, i * STATE_SIZE, now, out, 2 + 2 * i);
    return out;
  }

  /** Writes the normalised states (consumed when allowed; only new blocks when denied). */
  #commit(key: string, existing: Entry | undefined, mask: number, cost: number, now: number): void {
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
          this.#clients.set(key, entry);
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

  /** Forgets the per-client state of `key`. */
  reset(key: string): void {
    this.#clients.delete(key);
  }

  /** Drops entries whose every window has passed. */
  sweep(): void {
    const now = this.#clock();
    const stale: string[] = [];
    for (const [key, entry] of this.#clients.entries()) if ((entry[0] as number) <= now) stale.push(key);
    for (const key of stale) this.#clients.delete(key);
  }

  /** Stops the sweep timer and drops every entry. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#clients.clear();
  }
}
