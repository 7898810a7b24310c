/**
 * The worker's end of perfstack's `node:cluster` IPC channel (the primary's end is
 * `clusterPrimary()` in `perfstack/cluster`). Active only in a cluster worker whose primary
 * runs `clusterPrimary()` — it sets `PERFSTACK_CLUSTER=1` for the workers it forks — so an
 * app that merely runs under `node:cluster` for other reasons is not affected.
 *
 * Every message is `{ ps: 1, t: <type>, ... }` over the worker's IPC pipe (`process.send`):
 *
 * | type | direction | what |
 * |---|---|---|
 * | `rl-def` / `rl` / `rl-r` / `rl-reset` | both | the rate limiter's store in the primary (batched per loop turn) |
 * | `bc` | both | a broadcast: relayed at once by the primary to every other worker |
 * | `req` / `res` | both | a request to the primary and its answer (aggregated `/metrics`) |
 * | `roster` | primary → worker | the live workers, for `/health` and the dashboard |
 */

import cluster from 'node:cluster';

/** A message on the channel. */
export interface ClusterMessage {
  readonly ps: 1;
  readonly t: string;
  readonly [field: string]: unknown;
}

/** The environment variable `clusterPrimary()` sets for its workers. */
export const CLUSTER_ENV = 'PERFSTACK_CLUSTER';

/** The worker's end of the channel. */
export interface ClusterChannel {
  /** This worker's id (`cluster.worker.id`). */
  readonly workerId: number;
  /** True while the IPC pipe to the primary is open. */
  readonly connected: boolean;
  /** Sends a message to the primary (dropped while disconnected). */
  send(message: Omit<ClusterMessage, 'ps'>): void;
  /** Calls `handler` for every message of `type` from the primary. */
  on(type: string, handler: (message: ClusterMessage) => void): { dispose(): void };
  /** Sends `{ t: 'req', kind, ... }` and resolves with the primary's answer (rejects after `timeout` ms). */
  request<T>(kind: string, payload?: Record<string, unknown>, timeout?: number): Promise<T>;
  /** Publishes on a named channel to every other worker (the primary relays it at once). */
  broadcast(channel: string, message: string): void;
  /** Listens to broadcasts on a named channel from the other workers. */
  subscribe(channel: string, listener: (message: string) => void): { dispose(): void };
}

let channel: ClusterChannel | undefined;
let resolved = false;

/**
 * The channel, or `undefined` outside a perfstack cluster worker.
 *
 * @returns the process-wide channel (one per worker)
 */
export function clusterChannel(): ClusterChannel | undefined {
  if (resolved) return channel;
  resolved = true;
  const worker = cluster.isWorker ? cluster.worker : undefined;
  if (process.env[CLUSTER_ENV] !== '1' || worker === undefined || typeof process.send !== 'function') return undefined;
  channel = makeChannel(worker.id);
  return channel;
}

const ignore = () => {};

function makeChannel(workerId: number): ClusterChannel {
  const handlers = new Map<string, Set<(message: ClusterMessage) => void>>();
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  const on = (type: string, handler: (message: ClusterMessage) => void) => {
    let set = handlers.get(type);
    if (set === undefined) {
      set = new Set();
      handlers.set(type, set);
    }
    set.add(handler);
    return { dispose: () => set.delete(handler) };
  };
  const send = (message: Omit<ClusterMessage, 'ps'>) => {
    if (process.connected) process.send?.({ ps: 1, ...message }, undefined, undefined, ignore);
  };
  process.on('message', (message: unknown) => {
    if (typeof message !== 'object' || message === null || (message as ClusterMessage).ps !== 1) return;
    const m = message as ClusterMessage;
    if (m.t === 'res') {
      const w = waiting.get(m.id as number);
      if (w === undefined) return;
      waiting.delete(m.id as number);
      if (m.error !== undefined) w.reject(new Error(String(m.error)));
      else w.resolve(m.value);
      return;
    }
    const set = handlers.get(m.t);
    if (set !== undefined) for (const h of set) h(m);
  });
  const subscribers = new Map<string, Set<(message: string) => void>>();
  on('bc', (m) => {
    const set = subscribers.get(m.ch as string);
    if (set !== undefined) for (const l of set) l(m.m as string);
  });
  return {
    workerId,
    get connected() {
      return process.connected;
    },
    send,
    on,
    request<T>(kind: string, payload: Record<string, unknown> = {}, timeout = 5000): Promise<T> {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`the cluster primary did not answer "${kind}" within ${timeout}ms`));
        }, timeout);
        timer.unref();
        waiting.set(id, {
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v as T);
          },
          reject: (e) => {
            clearTimeout(timer);
            reject(e);
          },
        });
        send({ t: 'req', kind, id, ...payload });
      });
    },
    broadcast(ch: string, m: string) {
      send({ t: 'bc', ch, m });
    },
    subscribe(ch: string, listener: (message: string) => void) {
      let set = subscribers.get(ch);
      if (set === undefined) {
        set = new Set();
        subscribers.set(ch, set);
      }
      set.add(listener);
      return { dispose: () => set.delete(listener) };
    },
  };
}
