/**
 * The hub of perfstack's machine-wide channel, whatever carries it: the `node:cluster`
 * primary (`clusterPrimary()`, cluster.ts, over the workers' IPC pipes) or the detached hub
 * process of PM2 cluster mode (cluster-hub-main.ts, over a Unix domain socket). The
 * protocol is core's `cluster-channel.ts`.
 *
 * - **Rate limits**: one {@link ClusterStoreServer} (memory stores, one per limiter) decides
 *   for every worker — exact across workers, and across a worker's death (the counts live
 *   here). Workers batch their requests per event-loop turn; each batch gets one answer. A
 *   busy key far from its limit is lent to the workers in blocks they decide from without a
 *   message, recalled near the limit (leased quota, rate-limit's store/cluster-server.ts).
 * - **Broadcasts** (cache invalidations and tag purges, rate-limit resets, the dashboard's
 *   fleet view) are relayed to every other worker the moment they arrive.
 * - **`/metrics`**: gathers every worker's registry (`getMetricsAsJSON`) and aggregates them
 *   with prom-client's `AggregatorRegistry.aggregate`. Counters and histograms of a worker
 *   that left are kept as last gathered (every scrape and every `metricsInterval`), so a
 *   machine-wide counter does not drop when a worker is replaced.
 * - **Roster**: every worker hears the live workers once a second (`/health`, the dashboard,
 *   and the share a worker falls back to when the hub stops answering).
 */
import { AggregatorRegistry, type ClusterMessage } from '@perfstack/core';
import { ClusterStoreServer } from '@perfstack/rate-limit';

/** One worker as the hub sees it. */
export interface HubPeer {
  /** Stable while connected (cluster worker id, or the hub's connection number). */
  readonly id: number;
  /** Sends a message; a peer that is going away drops it. */
  send(message: ClusterMessage): void;
}

/** One worker in the roster. */
export interface HubRosterEntry {
  readonly id: number;
  readonly pid: number;
  readonly lastSeenMs: number;
  readonly rss: number;
  readonly heapUsed: number;
}

interface PeerState {
  readonly peer: HubPeer;
  /** The worker's own id (its `cluster.worker.id`, or PM2's `pm_id`), from its heartbeat. */
  worker: number;
  pid: number;
  lastSeen: number;
  rss: number;
  heapUsed: number;
  /** The last metrics gathered from it (prom-client's JSON form). */
  metrics: unknown[] | undefined;
}

const ROSTER_MS = 1000;

/** The hub's state and message handling (see the module comment). */
/** Settings paths the hub keeps, and the longest value (JSON) it keeps for one. */
const MAX_SETTINGS = 1000;
const MAX_SETTING_CHARS = 10_000;

export class ClusterHub {
  readonly #store = new ClusterStoreServer({ peers: () => this.#peers.size });
  /** The runtime settings in force (path → JSON value), for workers started later (settings.ts). */
  readonly #settings = new Map<string, string>();
  readonly #peers = new Map<number, PeerState>();
  /** Counters and histograms of workers that left, as last gathered. */
  readonly #retired: unknown[][] = [];
  readonly #gathers = new Map<number, { pending: Set<number>; results: unknown[][]; done: () => void }>();
  readonly #rosterTimer: NodeJS.Timeout;
  readonly #metricsTimer: NodeJS.Timeout;
  readonly #extra: () => Record<string, unknown>;
  #nextRid = 0;

  /**
   * @param metricsInterval ms between gathering every worker's metrics
   * @param extra fields added to every roster message (the hub's own pid, for example)
   */
  constructor(metricsInterval: number, extra: () => Record<string, unknown> = () => ({})) {
    this.#extra = extra;
    this.#rosterTimer = setInterval(() => this.#sendRoster(), ROSTER_MS);
    this.#rosterTimer.unref();
    this.#metricsTimer = setInterval(() => void this.metrics().catch(() => {}), metricsInterval);
    this.#metricsTimer.unref();
  }

  /** Live workers. */
  get size(): number {
    return this.#peers.size;
  }

  /** A worker connected (its heartbeat fills in the rest). */
  join(peer: HubPeer): void {
    this.#peers.set(peer.id, {
      peer,
      worker: peer.id,
      pid: 0,
      lastSeen: Date.now(),
      rss: 0,
      heapUsed: 0,
      metrics: undefined,
    });
    this.#sendRoster();
  }

  /** A worker left: its counters are kept, a metrics gathering stops waiting for it. */
  leave(id: number): PeerState | undefined {
    const state = this.#peers.get(id);
    if (state === undefined) return undefined;
    this.#peers.delete(id);
    // Its blocks count as used (store/cluster-server.ts says why).
    this.#store.leave(id);
    const kept = state.metrics?.filter((metric) => {
      const type = (metric as { type?: string }).type;
      return type === 'counter' || type === 'histogram';
    });
    if (kept !== undefined && kept.length > 0) this.#retired.push(kept);
    for (const gather of this.#gathers.values()) {
      if (gather.pending.delete(id) && gather.pending.size === 0) gather.done();
    }
    this.#sendRoster();
    return state;
  }

  /** Handles one message from a worker. */
  handle(from: HubPeer, message: unknown): void {
    if (typeof message !== 'object' || message === null || (message as ClusterMessage).ps !== 1) return;
    const m = message as ClusterMessage;
    switch (m.t) {
      case 'rl-b':
      case 'rl-r':
      case 'rl-def': {
        const answer = this.#store.handle(m, from);
        if (answer !== undefined) from.send(answer);
        return;
      }
      case 'rl-reset': {
        // Every other worker drops its block of the key and its local fallback's count; the
        // store forgets the key once the blocks are back, and then acknowledges.
        for (const state of this.#peers.values()) if (state.peer.id !== from.id) state.peer.send(m);
        const answer = this.#store.handle(m, from);
        if (answer !== undefined) from.send(answer);
        return;
      }
      case 'bc':
        // Relayed at once to every other worker: invalidations must not wait for a tick.
        for (const state of this.#peers.values()) if (state.peer.id !== from.id) state.peer.send(m);
        return;
      case 'hb': {
        const state = this.#peers.get(from.id);
        if (state === undefined) return;
        if (typeof m.worker === 'number') state.worker = m.worker;
        state.pid = Number(m.pid);
        state.lastSeen = Date.now();
        state.rss = Number(m.rss);
        state.heapUsed = Number(m.heapUsed);
        return;
      }
      case 'metrics-json-r': {
        const gather = this.#gathers.get(m.rid as number);
        if (Array.isArray(m.metrics)) {
          const state = this.#peers.get(from.id);
          if (state !== undefined) state.metrics = m.metrics as unknown[];
          gather?.results.push(m.metrics as unknown[]);
        }
        if (gather?.pending.delete(from.id) && gather.pending.size === 0) gather.done();
        return;
      }
      case 'req':
        if (m.kind === 'settings-load') {
          from.send({ ps: 1, t: 'res', id: m.id, value: Object.fromEntries(this.#settings) });
        } else if (m.kind === 'settings-save') {
          this.#saveSettings(m.set, m.removed);
          from.send({ ps: 1, t: 'res', id: m.id, value: true });
        } else if (m.kind === 'metrics') {
          this.metrics().then(
            (text) => from.send({ ps: 1, t: 'res', id: m.id, value: text }),
            (error: unknown) => from.send({ ps: 1, t: 'res', id: m.id, error: String(error) }),
          );
        } else {
          from.send({ ps: 1, t: 'res', id: m.id, error: `unknown request "${String(m.kind)}"` });
        }
        return;
      default:
        return;
    }
  }

  /** Keeps a settings change (strings only, bounded: a worker's bad message changes nothing else). */
  #saveSettings(set: unknown, removed: unknown): void {
    if (Array.isArray(removed)) for (const path of removed) if (typeof path === 'string') this.#settings.delete(path);
    if (typeof set !== 'object' || set === null) return;
    for (const [path, value] of Object.entries(set)) {
      if (typeof value !== 'string' || value.length > MAX_SETTING_CHARS) continue;
      if (!this.#settings.has(path) && this.#settings.size >= MAX_SETTINGS) continue;
      this.#settings.set(path, value);
    }
  }

  /** The live workers, by id. */
  roster(): HubRosterEntry[] {
    const now = Date.now();
    return [...this.#peers.values()]
      .map((s) => ({ id: s.worker, pid: s.pid, lastSeenMs: now - s.lastSeen, rss: s.rss, heapUsed: s.heapUsed }))
      .sort((a, b) => a.id - b.id);
  }

  /** Gathers every live worker's metrics and aggregates them with the retired ones. */
  metrics(): Promise<string> {
    return new Promise<unknown[][]>((resolve) => {
      const rid = this.#nextRid++;
      const pending = new Set(this.#peers.keys());
      const gather = { pending, results: [] as unknown[][], done: () => {} };
      const timer = setTimeout(() => finish(), 5000);
      const finish = () => {
        clearTimeout(timer);
        this.#gathers.delete(rid);
        resolve(gather.results);
      };
      gather.done = finish;
      this.#gathers.set(rid, gather);
      if (pending.size === 0) finish();
      const ask: ClusterMessage = { ps: 1, t: 'metrics-json', rid };
      for (const state of this.#peers.values()) state.peer.send(ask);
    }).then((results) => {
      const all = [...results, ...this.#retired];
      if (all.length === 0) return '';
      return AggregatorRegistry.aggregate(all as never).metrics();
    });
  }

  #sendRoster(): void {
    const message: ClusterMessage = { ps: 1, t: 'roster', workers: this.roster(), ...this.#extra() };
    for (const state of this.#peers.values()) state.peer.send(message);
  }

  close(): void {
    clearInterval(this.#rosterTimer);
    clearInterval(this.#metricsTimer);
    for (const gather of [...this.#gathers.values()]) gather.done();
    this.#store.close();
  }
}
