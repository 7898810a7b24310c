/**
 * The PM2 hub election (issue 16): when a hub dies, every worker finds its socket file refusing
 * connections and launches a hub, so several hub processes race over one stale file. Exactly
 * one may ever accept workers. A hub that accepted workers and then stepped down (another hub
 * had removed its file and bound the name) cost those workers their counts and sent them to
 * their local share while they reconnected: CI once admitted 175 of a limit of 100 right after
 * an election (pm2-cluster.test.ts).
 *
 * The hubs elect one at a time under a lock file (`<socket>.lock`, the holder's pid). Proven:
 * - a lock held by a live hub: a hub started over a stale socket file exits, and leaves the
 *   file alone (without the lock it removed the file and bound the name);
 * - a lock left by a hub that died (its pid gone, or the lock older than 10 s): taken over;
 * - the race itself, in rounds: a hub is started and SIGKILLed (its socket file stays, nobody
 *   accepts on it), then six hubs are started at once, as six workers would, while six clients
 *   connect as fast as they can (as the workers' reconnect loop does). One hub process is left;
 *   every client is connected to it; no client's connection was ever closed; no client ever
 *   heard a roster from another hub.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/http.js';

const hubMain = fileURLToPath(new URL('../../packages/perfstack/dist/cluster-hub-main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'perfstack-election-'));
const started: ChildProcess[] = [];

afterAll(() => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function startHub(path: string): ChildProcess {
  const child = spawn(process.execPath, [hubMain, path], {
    stdio: 'ignore',
    env: { ...process.env, PERFSTACK_CLUSTER_HUB_IDLE: '60000' },
  });
  started.push(child);
  return child;
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

/** A worker's view of the hub: which hub pids it heard, and whether its connection closed. */
interface Client {
  readonly hubPids: Set<number>;
  closes: number;
  socket: Socket | undefined;
  stop: boolean;
}

/** Connects like a worker's hub transport: retries every 25 ms until a hub accepts, then reconnects after a close. */
function client(path: string): Client {
  const state: Client = { hubPids: new Set(), closes: 0, socket: undefined, stop: false };
  const open = () => {
    if (state.stop) return;
    const socket = connect(path);
    let up = false;
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      up = true;
      state.socket = socket;
    });
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const message = JSON.parse(buffered.slice(0, nl)) as { t?: string; hubPid?: number };
        buffered = buffered.slice(nl + 1);
        if (message.t === 'roster' && typeof message.hubPid === 'number') state.hubPids.add(message.hubPid);
        nl = buffered.indexOf('\n');
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      if (up) state.closes++;
      if (state.socket === socket) state.socket = undefined;
      setTimeout(open, 25);
    });
  };
  open();
  return state;
}

/** True when a hub accepts on `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** Starts a hub, waits until it accepts, and SIGKILLs it: its socket file stays behind. */
async function staleSocket(path: string): Promise<void> {
  const dead = startHub(path);
  await waitFor(() => answers(path), 30_000, 20);
  dead.kill('SIGKILL');
  await waitFor(() => exited(dead), 10_000, 10);
  expect(existsSync(path)).toBe(true);
  expect(await answers(path)).toBe(false);
}

const exitOf = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (exited(child)) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });

describe('the PM2 hub election lock', () => {
  it('a lock held by a live hub: a hub started over a stale socket file exits and leaves the file alone', async () => {
    const path = join(dir, 'held.sock');
    await staleSocket(path);
    const before = statSync(path);
    // This test process stands for a hub in the middle of its election.
    writeFileSync(`${path}.lock`, String(process.pid));
    const hub = startHub(path);
    expect(await exitOf(hub)).toBe(0);
    const after = statSync(path);
    expect([after.ino, after.ctimeMs]).toEqual([before.ino, before.ctimeMs]);
    expect(await answers(path)).toBe(false);
    expect(readFileSync(`${path}.lock`, 'utf8')).toBe(String(process.pid));
    rmSync(`${path}.lock`);
  });

  it.each([
    ['its pid is gone', 'dead'],
    ['older than 10 s', 'old'],
  ])('a lock left by a hub that died (%s) is taken over: the new hub binds and lets the lock go', async (_, kind) => {
    const path = join(dir, `${kind}.sock`);
    await staleSocket(path);
    if (kind === 'dead') {
      const gone = spawn(process.execPath, ['-e', '0']);
      await exitOf(gone);
      writeFileSync(`${path}.lock`, String(gone.pid));
    } else {
      writeFileSync(`${path}.lock`, String(process.pid));
      const past = new Date(Date.now() - 11_000);
      utimesSync(`${path}.lock`, past, past);
    }
    const hub = startHub(path);
    try {
      await waitFor(() => answers(path), 30_000, 20);
      // The name accepts as soon as it is bound; the lock goes in the listen callback, just after.
      await waitFor(() => !existsSync(`${path}.lock`), 10_000, 10);
      expect(exited(hub)).toBe(false);
      expect(await answers(path)).toBe(true);
    } finally {
      hub.kill('SIGKILL');
    }
  });
});

describe('the PM2 hub election over a stale socket file', () => {
  it.each([1, 2, 3])(
    'round %i: six hubs race, one is left, and no worker that joined a hub is ever dropped by it',
    async (round) => {
      const path = join(dir, `hub-${round}.sock`);
      // A hub killed outright: its socket file stays behind, refusing connections.
      await staleSocket(path);

      const clients = Array.from({ length: 6 }, () => client(path));
      const hubs = Array.from({ length: 6 }, () => startHub(path));
      try {
        // A hub's start costs ~0.6 s of CPU (its imports); six at once on a loaded machine take a while.
        await waitFor(() => clients.every((c) => c.socket !== undefined && c.hubPids.size > 0), 60_000, 20).catch(
          (error: Error) => {
            const lock = existsSync(`${path}.lock`) ? readFileSync(`${path}.lock`, 'utf8') : 'none';
            throw new Error(
              `${error.message}: ${JSON.stringify({
                hubs: hubs.map((h) => [h.pid, h.exitCode, h.signalCode]),
                clients: clients.map((c) => [[...c.hubPids], c.closes, c.socket !== undefined]),
                socketFile: existsSync(path),
                lock,
              })}`,
            );
          },
        );
        // Every other hub finds the name answering and exits (a late one once it has started);
        // a hub whose file was replaced would step down within a second (its watch): wait past that.
        await waitFor(() => hubs.filter((h) => !exited(h)).length <= 1, 60_000, 50);
        await new Promise((resolve) => setTimeout(resolve, 2500));
        const alive = hubs.filter((h) => !exited(h));
        expect(
          alive,
          JSON.stringify({
            hubs: hubs.map((h) => [h.pid, h.exitCode, h.signalCode]),
            clients: clients.map((c) => [[...c.hubPids], c.closes]),
          }),
        ).toHaveLength(1);
        const winner = (alive[0] as ChildProcess).pid;
        for (const c of clients) {
          expect(c.closes).toBe(0);
          expect([...c.hubPids]).toEqual([winner]);
          expect(c.socket).toBeDefined();
        }
      } finally {
        for (const c of clients) {
          c.stop = true;
          c.socket?.destroy();
        }
        for (const h of hubs) if (!exited(h)) h.kill('SIGKILL');
      }
      expect(existsSync(`${path}.lock`)).toBe(false);
    },
    90_000,
  );
});
