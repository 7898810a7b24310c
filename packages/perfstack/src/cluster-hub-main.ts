/**
 * The hub process of PM2 cluster mode (and `PERFSTACK_CLUSTER=hub`): run by a worker that
 * found no hub (`launchHub()` in cluster-worker.ts), never by hand.
 *
 *   node cluster-hub-main.js --detach <socket>   # re-launches itself detached, then exits
 *   node cluster-hub-main.js <socket>            # the hub
 *
 * `<socket>` is a socket file's path (`hubSocketPath()` in core's cluster-channel.ts), a
 * Windows pipe name, or `@name` for a Linux abstract socket (`PERFSTACK_CLUSTER_SOCKET`).
 *
 * The listen is the election: the one process that binds the socket is the hub; the others
 * exit at once (one at a time, under a lock file, when a dead hub left its socket file behind:
 * see `elect`). The hub runs {@link ClusterHub} over one connection per worker (one JSON
 * document per line), and exits when no worker has been connected for
 * `PERFSTACK_CLUSTER_HUB_IDLE` ms (default 10 s) — after `pm2 stop`/`pm2 kill`, for example.
 * `PERFSTACK_CLUSTER_METRICS_INTERVAL` (ms, default 5000): how often it gathers every
 * worker's metrics, so that a worker that dies keeps its counters in `/metrics`.
 */
import { spawn } from 'node:child_process';
import { linkSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { type ClusterMessage, jsonLines } from '@perfstack/core';
import { ClusterHub, type HubPeer } from './cluster-hub.js';

const args = process.argv.slice(2);
const detach = args[0] === '--detach';
const arg = (detach ? args[1] : args[0]) ?? '';
/** `@name`: a Linux abstract socket (argv cannot carry its leading NUL). */
const path = arg.startsWith('@') ? `\0${arg.slice(1)}` : arg;

if (path === '') {
  process.stderr.write('perfstack cluster hub: usage: cluster-hub-main.js [--detach] <socket>\n');
  process.exit(2);
}

if (detach) {
  // The worker that launched us may be killed with its process tree: the hub is launched
  // by this short-lived process instead, and outlives it.
  const child = spawn(process.execPath, [process.argv[1] as string, arg], {
    detached: true,
    stdio: 'ignore',
    windowsHide: true,
  });
  child.unref();
  process.exit(0);
}

const idleMs = Number(process.env.PERFSTACK_CLUSTER_HUB_IDLE ?? 10_000);
/** ms between gathering every worker's metrics (kept for workers that die), as `clusterPrimary({ metricsInterval })`. */
const metricsMs = Number(process.env.PERFSTACK_CLUSTER_METRICS_INTERVAL ?? 5000);
const hub = new ClusterHub(Number.isFinite(metricsMs) && metricsMs >= 100 ? metricsMs : 5000, () => ({
  hubPid: process.pid,
}));
const sockets = new Set<Socket>();
let idleTimer: NodeJS.Timeout | undefined;
let nextId = 1;

const armIdle = () => {
  if (idleTimer !== undefined || sockets.size > 0) return;
  idleTimer = setTimeout(() => shutdown(), Math.max(100, idleMs));
};

const server = createServer((socket) => {
  if (idleTimer !== undefined) {
    clearTimeout(idleTimer);
    idleTimer = undefined;
  }
  sockets.add(socket);
  socket.setNoDelay(true);
  socket.setEncoding('utf8');
  const peer: HubPeer = {
    id: nextId++,
    send(message: ClusterMessage) {
      if (socket.writable) socket.write(`${JSON.stringify(message)}\n`);
    },
  };
  hub.join(peer);
  socket.on(
    'data',
    jsonLines((message) => hub.handle(peer, message)),
  );
  socket.on('error', () => {});
  socket.once('close', () => {
    sockets.delete(socket);
    hub.leave(peer.id);
    armIdle();
  });
});

/** The socket file's identity once bound (a later hub that replaced it changes it). */
let bound: { dev: number; ino: number } | undefined;
let watch: NodeJS.Timeout | undefined;
const isFile = !path.startsWith('\\\\') && !path.startsWith('\0');

function shutdown(): void {
  hub.close();
  if (watch !== undefined) clearInterval(watch);
  for (const socket of sockets) socket.destroy();
  // Remove the socket file, unless another hub has bound the name since.
  if (isFile && bound !== undefined && stillOurs()) rmSync(path, { force: true });
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}

function stillOurs(): boolean {
  try {
    const stat = statSync(path);
    return bound !== undefined && stat.dev === bound.dev && stat.ino === bound.ino;
  } catch {
    return false;
  }
}

/** The election lock next to a socket file (`<socket>.lock`, holding the holder's pid). */
const lockPath = `${path}.lock`;
/** A lock older than this was left by a hub that died while electing (an election takes milliseconds). */
const LOCK_STALE_MS = 10_000;

/**
 * Takes the election lock: true when this hub holds it now. The lock appears whole (a file
 * with this hub's pid, hard-linked to the lock's name: the link fails if the name exists), so
 * a reader never sees it empty. A lock held by a live hub means that hub is electing: it binds
 * the name or finds the hub that has, so this one exits. A lock left by a hub that died holding
 * it (its pid is gone, or the lock is older than {@link LOCK_STALE_MS}, in case the pid was
 * reused) is replaced with this hub's, atomically (rename), and read back: of two hubs
 * replacing it at once, the one whose pid it holds wins.
 */
function lock(): boolean {
  const mine = `${lockPath}.${process.pid}`;
  try {
    writeFileSync(mine, String(process.pid), { mode: 0o600 });
    try {
      linkSync(mine, lockPath);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') return false;
    }
    const holder = Number(readFileSync(lockPath, 'utf8'));
    const age = Date.now() - statSync(lockPath).mtimeMs;
    if (age < LOCK_STALE_MS && alive(holder)) return false;
    renameSync(mine, lockPath);
    return readFileSync(lockPath, 'utf8') === String(process.pid);
  } catch {
    return false; // the lock went away while read (its holder is done): that hub is elected
  } finally {
    rmSync(mine, { force: true });
  }
}

function unlock(): void {
  try {
    if (readFileSync(lockPath, 'utf8') === String(process.pid)) rmSync(lockPath, { force: true });
  } catch {
    // gone already
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The election over a socket file. Binding a name nobody holds is atomic, but a file left by a
 * dead hub must be removed first, and a hub that removes it must know that no other hub bound
 * the name in between: removing that hub's file would leave two hubs, the workers split
 * between them, and the one stepping down (its watch, below) would cost its workers their
 * counts and send them to their local share while they reconnect (CI once admitted 175 of a
 * limit of 100 right after an election). So the whole election (bind, probe, removal, bind
 * again) runs under the lock file, and one hub at a time runs it; the next finds the name
 * answering and exits. A Windows pipe or a Linux abstract name leaves nothing behind: its bind
 * alone is the election.
 */
function elect(): void {
  if (!isFile) {
    listen(false);
    return;
  }
  if (!lock()) process.exit(0);
  listen(false);
}

/** Binds the socket; a file left by a dead hub (nobody accepts on it) is removed and the bind retried once. */
function listen(retried: boolean): void {
  server.once('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EADDRINUSE' || retried || !isFile) {
      if (isFile) unlock();
      process.exit(0);
    }
    const probe = connect(path);
    probe.once('connect', () => {
      unlock();
      process.exit(0);
    });
    probe.once('error', () => {
      rmSync(path, { force: true });
      listen(true);
    });
  });
  server.listen(path, () => {
    if (isFile) {
      const stat = statSync(path);
      bound = { dev: stat.dev, ino: stat.ino };
      unlock();
      // A safety net: should the file be replaced all the same (by hand, or by a hub that
      // predates the lock), this hub steps down within a second and its workers reconnect.
      watch = setInterval(() => {
        if (!stillOurs()) shutdown();
      }, 1000);
      watch.unref();
    }
    armIdle();
  });
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
elect();
