/**
 * A worker's end of perfstack's machine-wide channel: how the processes of one app on one
 * machine share rate-limit counters, invalidations, `/metrics` and the fleet view without
 * Redis. Two transports, one protocol:
 *
 * - **`node:cluster`** (`PERFSTACK_CLUSTER=1`, set by `clusterPrimary()` from
 *   `perfstack/cluster` for the workers it forks): the worker's IPC pipe to the primary,
 *   which runs the hub.
 * - **The hub socket** (PM2 cluster mode, detected from the `exec_mode` PM2 gives its
 *   workers; or `PERFSTACK_CLUSTER=hub` for any set of processes): PM2's primary is PM2's own
 *   daemon and cannot run our code, so a small detached hub process listens on a Unix domain
 *   socket in a directory only this user may enter (a named pipe on Windows). The first worker that finds no hub launches one (the
 *   launcher `perfstack` registers); every worker connects to it, and when it dies they
 *   launch and elect a new one — the listen is the election: one process binds the name,
 *   the others give up. The hub is not a worker, so workers that die or are reloaded do not
 *   take the counters with them.
 *
 * An app that merely runs under `node:cluster` for other reasons is not affected.
 *
 * Every message is `{ ps: 1, t: <type>, ... }` (IPC: Node's JSON serialization; the socket:
 * one JSON document per line):
 *
 * | type | direction | what |
 * |---|---|---|
 * | `rl-def` / `rl-b` / `rl-a` / `rl-reset` | both | the rate limiter's store in the hub (a batch per loop turn, its answer) |
 * | `bc` | both | a broadcast: relayed at once by the hub to every other worker |
 * | `req` / `res` | both | a request to the hub and its answer (aggregated `/metrics`) |
 * | `hb` | worker → hub | heartbeat: pid, memory |
 * | `roster` | hub → worker | the live workers, for `/health`, the dashboard and the fallback share |
 */

import cluster from 'node:cluster';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A message on the channel. */
export interface ClusterMessage {
  readonly ps: 1;
  readonly t: string;
  readonly [field: string]: unknown;
}

/** The environment variable that selects the channel: `1` (node:cluster IPC, set by `clusterPrimary()`), `hub`, or `0` (off). */
export const CLUSTER_ENV = 'PERFSTACK_CLUSTER';
/** The environment variable that names the hub's socket (default: derived from the app). */
export const CLUSTER_SOCKET_ENV = 'PERFSTACK_CLUSTER_SOCKET';

/** The worker's end of the channel. */
export interface ClusterChannel {
  /** `'ipc'` (node:cluster primary) or `'hub'` (the hub socket). */
  readonly transport: 'ipc' | 'hub';
  /** This worker's id (`cluster.worker.id`; under PM2, `pm_id`; otherwise the pid). */
  readonly workerId: number;
  /** True while the link to the hub is open. */
  readonly connected: boolean;
  /** Live workers in the hub's last roster (at least 1): what the fallback share divides by. */
  readonly liveWorkers: number;
  /** Sends a message to the hub (dropped while disconnected). */
  send(message: Omit<ClusterMessage, 'ps'>): void;
  /** Calls `handler` for every message of `type` from the hub. */
  on(type: string, handler: (message: ClusterMessage) => void): { dispose(): void };
  /** Calls `handler` on every (re)connection to a hub (a new hub knows nothing yet). */
  onConnect(handler: () => void): { dispose(): void };
  /** Calls `handler` when the link to the hub closes (what was asked of it will not be answered). */
  onDisconnect(handler: () => void): { dispose(): void };
  /** Sends `{ t: 'req', kind, ... }` and resolves with the hub's answer (rejects after `timeout` ms). */
  request<T>(kind: string, payload?: Record<string, unknown>, timeout?: number): Promise<T>;
  /** Publishes on a named channel to every other worker (the hub relays it at once). */
  broadcast(channel: string, message: string): void;
  /** Listens to broadcasts on a named channel from the other workers. */
  subscribe(channel: string, listener: (message: string) => void): { dispose(): void };
  /** Closes the link (the hub socket; the IPC pipe stays, it belongs to node:cluster). */
  close(): void;
}

/** What a transport gives the channel. */
export interface ClusterTransport {
  readonly kind: 'ipc' | 'hub';
  readonly connected: boolean;
  send(message: ClusterMessage): void;
  /** Registers the message sink and the (re)connection and disconnection callbacks; starts the transport. */
  start(onMessage: (message: ClusterMessage) => void, onConnect: () => void, onDisconnect: () => void): void;
  close(): void;
}

/** Launches a hub process for `socketPath` (registered by `perfstack`; see the module comment). */
export type HubLauncher = (socketPath: string) => void;

let channel: ClusterChannel | undefined;
let resolved = false;
let launcher: HubLauncher | undefined;

/** Registers how a worker launches a hub when it finds none (called by `perfstack`). */
export function setHubLauncher(launch: HubLauncher): void {
  launcher = launch;
}

/** True when this process runs as a PM2 cluster-mode worker. */
export function isPm2ClusterWorker(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.exec_mode === 'cluster_mode' && env.pm_id !== undefined;
}

/**
 * The hub's socket for this app: `PERFSTACK_CLUSTER_SOCKET`, else one named after the user,
 * the PM2 home and the app (its PM2 name, script and directory), so two apps never share a
 * hub. A file in `<tmpdir>/perfstack-<uid>/`, a directory only this user may enter (mode
 * 0700, checked: a directory someone else made is refused), so other users of the machine
 * cannot talk to the hub; on Windows a named pipe.
 *
 * @returns the path, or `undefined` when no safe directory can be had
 */
export function hubSocketPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const explicit = env[CLUSTER_SOCKET_ENV];
  if (explicit !== undefined && explicit !== '') return explicit;
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  const app = [uid, env.PM2_HOME ?? '', env.name ?? '', env.pm_exec_path ?? process.argv[1] ?? '', process.cwd()];
  const id = createHash('sha256').update(app.join('\0')).digest('base64url').slice(0, 16);
  if (process.platform === 'win32') return `\\\\.\\pipe\\perfstack-${id}`;
  const dir = join(tmpdir(), `perfstack-${uid}`);
  try {
    mkdirSync(dir, { mode: 0o700, recursive: true });
    const stat = lstatSync(dir);
    if (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o077) !== 0) return undefined;
  } catch {
    return undefined;
  }
  return join(dir, `${id}.sock`);
}

/**
 * The channel, or `undefined` when this process is not a perfstack cluster worker.
 *
 * @returns the process-wide channel (one per worker)
 */
export function clusterChannel(): ClusterChannel | undefined {
  if (resolved) return channel;
  resolved = true;
  const mode = process.env[CLUSTER_ENV];
  if (mode === '0') return undefined;
  const worker = cluster.isWorker ? cluster.worker : undefined;
  if (mode === '1' && worker !== undefined && typeof process.send === 'function') {
    channel = createClusterChannel(ipcTransport(), worker.id);
  } else if (mode === 'hub' || (mode === undefined && isPm2ClusterWorker())) {
    const path = hubSocketPath();
    if (path === undefined) {
      process.emitWarning(
        `perfstack: no private directory for the cluster hub's socket (${join(tmpdir(), 'perfstack-<uid>')} must be this user's, mode 0700); this worker limits and caches on its own. Set ${CLUSTER_SOCKET_ENV} to a socket path in a private directory.`,
        { code: 'PERFSTACK_CLUSTER_SOCKET' },
      );
      return undefined;
    }
    const id = Number(process.env.pm_id ?? process.env.NODE_APP_INSTANCE ?? process.pid);
    channel = createClusterChannel(hubTransport(path), Number.isFinite(id) ? id : process.pid);
  }
  return channel;
}

const ignore = () => {};

/** The node:cluster IPC pipe to the primary. */
function ipcTransport(): ClusterTransport {
  return {
    kind: 'ipc',
    get connected() {
      return process.connected;
    },
    send(message) {
      if (process.connected) process.send?.(message, undefined, undefined, ignore);
    },
    start(onMessage, onConnect, onDisconnect) {
      process.once('disconnect', onDisconnect);
      process.on('message', (message: unknown) => {
        if (typeof message === 'object' && message !== null && (message as ClusterMessage).ps === 1) {
          onMessage(message as ClusterMessage);
        }
      });
      onConnect();
    },
    close() {},
  };
}

/** ms between attempts to reach (or launch) a hub. */
const RECONNECT_MS = [20, 50, 100, 200, 400];
/** ms between two hub launches by one worker. */
const LAUNCH_MS = 2000;

/**
 * The hub socket: one JSON document per line. When the hub is unreachable the worker
 * launches one (the launcher) and retries; a dead hub is noticed at once (the socket closes).
 */
export function hubTransport(path: string): ClusterTransport {
  let socket: Socket | undefined;
  let up = false;
  let closed = false;
  let attempt = 0;
  let launchedAt = Number.NEGATIVE_INFINITY;
  let timer: NodeJS.Timeout | undefined;
  let deliver: (message: ClusterMessage) => void = ignore;
  let connected: () => void = ignore;
  let disconnected: () => void = ignore;
  const reconnect = () => {
    if (closed || timer !== undefined) return;
    const wait = RECONNECT_MS[Math.min(attempt, RECONNECT_MS.length - 1)] as number;
    attempt++;
    timer = setTimeout(() => {
      timer = undefined;
      open();
    }, wait);
    timer.unref();
  };
  const open = () => {
    if (closed) return;
    const s = connect(path);
    socket = s;
    s.unref();
    s.setNoDelay(true);
    s.setEncoding('utf8');
    s.once('connect', () => {
      up = true;
      attempt = 0;
      connected();
    });
    s.on(
      'data',
      jsonLines((message) => {
        if (typeof message === 'object' && message !== null && (message as ClusterMessage).ps === 1) {
          deliver(message as ClusterMessage);
        }
      }),
    );
    s.on('error', (error: NodeJS.ErrnoException) => {
      // Nobody listens: launch a hub (every worker may; one wins the listen, the rest exit).
      // At most one launch per LAUNCH_MS from this worker: a hub needs a moment to start.
      if (!up && (error.code === 'ENOENT' || error.code === 'ECONNREFUSED') && launcher !== undefined) {
        const now = Date.now();
        if (now - launchedAt >= LAUNCH_MS) {
          launchedAt = now;
          launcher(path);
        }
      }
    });
    s.once('close', () => {
      if (up) disconnected();
      up = false;
      if (socket === s) socket = undefined;
      reconnect();
    });
  };
  return {
    kind: 'hub',
    get connected() {
      return up;
    },
    send(message) {
      if (up) socket?.write(`${JSON.stringify(message)}\n`);
    },
    start(onMessage, onConnect, onDisconnect) {
      deliver = onMessage;
      connected = onConnect;
      disconnected = onDisconnect;
      open();
    },
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      socket?.destroy();
    },
  };
}

/** Builds a channel over a transport (exported for the tests and the hub's own checks). */
export function createClusterChannel(transport: ClusterTransport, workerId: number): ClusterChannel {
  const handlers = new Map<string, Set<(message: ClusterMessage) => void>>();
  const connectHandlers = new Set<() => void>();
  const disconnectHandlers = new Set<() => void>();
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const subscribers = new Map<string, Set<(message: string) => void>>();
  let nextId = 0;
  let liveWorkers = 1;
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
    (message as { ps: number }).ps = 1;
    transport.send(message as ClusterMessage);
  };
  on('bc', (m) => {
    const set = subscribers.get(m.ch as string);
    if (set !== undefined) for (const l of set) l(m.m as string);
  });
  on('roster', (m) => {
    if (Array.isArray(m.workers)) liveWorkers = Math.max(1, m.workers.length);
  });
  transport.start(
    (m) => {
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
    },
    () => {
      for (const h of connectHandlers) h();
    },
    () => {
      for (const h of disconnectHandlers) h();
    },
  );
  return {
    transport: transport.kind,
    workerId,
    get connected() {
      return transport.connected;
    },
    get liveWorkers() {
      return liveWorkers;
    },
    send,
    on,
    onConnect(handler: () => void) {
      connectHandlers.add(handler);
      return { dispose: () => connectHandlers.delete(handler) };
    },
    onDisconnect(handler: () => void) {
      disconnectHandlers.add(handler);
      return { dispose: () => disconnectHandlers.delete(handler) };
    },
    request<T>(kind: string, payload: Record<string, unknown> = {}, timeout = 5000): Promise<T> {
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(id);
          reject(new Error(`the cluster hub did not answer "${kind}" within ${timeout}ms`));
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
    close() {
      transport.close();
    },
  };
}

/**
 * Newline-delimited JSON framing for the hub's Unix socket: returns a `'data'` listener
 * (string chunks) that calls `onMessage` with each complete line parsed; a line that is not
 * JSON is skipped, a partial line waits for the rest. Used by both ends (workers here, the
 * hub in perfstack's cluster-hub-main.ts).
 */
export function jsonLines(onMessage: (message: unknown) => void): (chunk: string) => void {
  let buffer = '';
  return (chunk) => {
    buffer += chunk;
    let start = 0;
    for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n', start)) {
      const line = buffer.slice(start, nl);
      start = nl + 1;
      let message: unknown;
      try {
        message = JSON.parse(line);
      } catch {
        continue;
      }
      onMessage(message);
    }
    buffer = start === 0 ? buffer : buffer.slice(start);
  };
}
