/**
 * The cluster store's protocol (issue 16, session 5: a callback per decision, one message per
 * event-loop turn each way, answers read in place): a worker's {@link ClusterStore} talking to
 * a {@link ClusterStoreServer} through a loopback transport that serializes every message as
 * JSON and delivers it in a later turn, as the IPC pipe does. The real processes (node:cluster,
 * PM2) are in test/reliability/node-cluster.test.ts and pm2-cluster.test.ts.
 */
import { type ClusterMessage, type ClusterTransport, createClusterChannel } from '@perfstack/core';
import {
  ClusterStore,
  type ClusterStoreDefinition,
  ClusterStoreServer,
  ClusterStoreTimeoutError,
  FIXED_WINDOW,
} from '@perfstack/rate-limit';
import { afterEach, describe, expect, it } from 'vitest';

interface Loopback {
  readonly transport: ClusterTransport;
  /** Messages the worker sent, as the hub received them. */
  readonly sent: ClusterMessage[];
  /** Stops answering (a stopped primary) or resumes. */
  silent: boolean;
  /** Closes the link as a dying primary does. */
  disconnect(): void;
}

/** A worker's link to `server`: JSON both ways, each message delivered in a later turn. */
function loopback(server: ClusterStoreServer, leases = false): Loopback {
  let deliver: (message: ClusterMessage) => void = () => {};
  let disconnected: () => void = () => {};
  let up = true;
  const link: Loopback = {
    sent: [],
    silent: false,
    disconnect() {
      up = false;
      disconnected();
    },
    transport: {
      kind: 'ipc',
      get connected() {
        return up;
      },
      send(message) {
        const wire = JSON.stringify(message);
        setImmediate(() => {
          const received = JSON.parse(wire) as ClusterMessage;
          link.sent.push(received);
          const back = (message: ClusterMessage) => {
            if (link.silent) return;
            const wire = JSON.stringify(message);
            setImmediate(() => deliver(JSON.parse(wire) as ClusterMessage));
          };
          // A peer (recalls, held answers) only for a hub that offers leases.
          const answer = server.handle(received, leases ? { id: 1, send: back } : undefined);
          if (answer !== undefined) back(answer);
        });
      },
      start(onMessage, onConnect, onDisconnect) {
        deliver = onMessage;
        disconnected = onDisconnect;
        onConnect();
      },
      close() {},
    },
  };
  return link;
}

const definition = (ns: string, limit: number, lease?: number): ClusterStoreDefinition => ({
  ns,
  specs: [{ algorithm: FIXED_WINDOW, limit, windowMs: 60_000, blockMs: 0 }],
  global: [false],
  maxKeys: 1000,
  maxHeldKeys: 1000,
  ...(lease === undefined ? {} : { lease }),
});

type Answer = { error: Error | undefined; decision: number[] };

/** Asks `n` decisions in one turn; resolves every answer once all came. */
function askMany(store: ClusterStore, n: number, key = 'client'): Promise<Answer[]> {
  return new Promise((resolve) => {
    const answers: Answer[] = [];
    for (let i = 0; i < n; i++) {
      store.ask(key, 1, -1, false, (error, decision) => {
        answers.push({ error, decision: [...decision] });
        if (answers.length === n) resolve(answers);
      });
    }
  });
}

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

function setup(limits: Record<string, number>, timeout = 2000) {
  const server = new ClusterStoreServer();
  const link = loopback(server);
  const channel = createClusterChannel(link.transport, 1);
  const stores = Object.fromEntries(
    Object.entries(limits).map(([ns, limit]) => [ns, new ClusterStore(channel, definition(ns, limit), timeout)]),
  );
  closers.push(() => {
    for (const store of Object.values(stores)) store.close();
    server.close();
  });
  return { server, link, stores };
}

describe('ClusterStore ↔ ClusterStoreServer', () => {
  it('1,000 decisions asked in one turn travel as one batch and one answer: exactly 100 of them admitted, in order', async () => {
    const { link, stores } = setup({ a: 100 });
    const answers = await askMany(stores.a as ClusterStore, 1000);
    const batches = link.sent.filter((m) => m.t === 'rl-b');
    expect(batches).toHaveLength(1);
    // [key, cost, now] per decision: no id, no object
    expect((batches[0] as ClusterMessage).b).toHaveLength(3000);
    expect(answers.filter((a) => a.error === undefined && a.decision[0] === 0)).toHaveLength(100);
    // remaining counts down 99 … 0 for the admitted ones, in the order asked
    expect(answers.slice(0, 100).map((a) => a.decision[2])).toEqual(Array.from({ length: 100 }, (_, i) => 99 - i));
    // a refusal: bit 0 of the mask, a retry in (0, 60 s]
    const refused = answers[100] as Answer;
    expect(refused.decision[0]).toBe(1);
    expect(refused.decision[1]).toBeGreaterThan(0);
    expect(refused.decision[1]).toBeLessThanOrEqual(60_000);
  });

  it('two limiters on one channel each get their own answers (batch numbers are unique per process)', async () => {
    const { stores } = setup({ small: 3, large: 50 });
    const [small, large] = await Promise.all([
      askMany(stores.small as ClusterStore, 10),
      askMany(stores.large as ClusterStore, 10),
    ]);
    expect(small.map((a) => a.decision[0])).toEqual([0, 0, 0, 1, 1, 1, 1, 1, 1, 1]);
    expect(large.map((a) => a.decision[0])).toEqual(Array(10).fill(0));
    expect(large.map((a) => a.decision[2])).toEqual([49, 48, 47, 46, 45, 44, 43, 42, 41, 40]);
  });

  it('decide() (the promise form) answers a copy; a dry read consumes nothing', async () => {
    const { stores } = setup({ a: 5 });
    const store = stores.a as ClusterStore;
    const first = await store.decide('k', 1, -1, false);
    const dry = await store.decide('k', 0, -1, true);
    const second = await store.decide('k', 1, -1, false);
    expect(first[2]).toBe(4);
    expect(dry[2]).toBe(4);
    expect(second[2]).toBe(3);
    expect(first).not.toBe(second);
  });

  it('a callback that throws does not keep the rest of its batch from their answers', async () => {
    const { stores } = setup({ a: 100 });
    const store = stores.a as ClusterStore;
    const boom = new Error('boom');
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    // the answer arrives in a setImmediate: its throw surfaces as an uncaught exception
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onUncaught);
    try {
      const answered: number[] = [];
      await new Promise<void>((resolve) => {
        store.ask('k', 1, -1, false, () => {
          throw boom;
        });
        for (let i = 0; i < 3; i++) {
          store.ask('k', 1, -1, false, (_error, decision) => {
            answered.push(decision[2] as number);
            if (answered.length === 3) setImmediate(resolve);
          });
        }
      });
      expect(answered).toEqual([98, 97, 96]);
      expect(uncaught).toEqual([boom]);
    } finally {
      process.off('uncaughtException', onUncaught);
      for (const l of listeners) process.on('uncaughtException', l);
    }
  });

  it('a silent primary: the batch fails with ClusterStoreTimeoutError after the timeout; a late answer is ignored', async () => {
    const { link, stores } = setup({ a: 100 }, 100);
    link.silent = true;
    const answers = await askMany(stores.a as ClusterStore, 3);
    expect(answers.map((a) => a.error)).toEqual([
      expect.any(ClusterStoreTimeoutError),
      expect.any(ClusterStoreTimeoutError),
      expect.any(ClusterStoreTimeoutError),
    ]);
    link.silent = false;
    // the hub did count them (it decided; only the answers were lost): the next one is the 4th
    const [next] = await askMany(stores.a as ClusterStore, 1);
    expect(next?.decision[2]).toBe(96);
  });

  it('a primary that goes away fails every decision not answered yet, the batch being filled too', async () => {
    const { link, stores } = setup({ a: 100 });
    const store = stores.a as ClusterStore;
    const pending = askMany(store, 4);
    link.disconnect();
    const answers = await pending;
    expect(answers.map((a) => a.error?.message)).toEqual(Array(4).fill('the cluster hub is gone'));
    // unreachable now: failed at once
    let error: Error | undefined;
    store.ask('k', 1, -1, false, (e) => {
      error = e;
    });
    expect(error?.message).toBe('the cluster hub is unreachable');
  });

  it('leases: one message per block, not per decision; exactly the limit; Remaining counts down as in the hub', async () => {
    const server = new ClusterStoreServer();
    const link = loopback(server, true);
    const channel = createClusterChannel(link.transport, 1);
    const store = new ClusterStore(channel, definition('l', 1000, 10));
    closers.push(() => {
      store.close();
      server.close();
    });
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve)); // the hub's rl-lease
    const remaining: number[] = [];
    for (let i = 0; i < 1100; i++) {
      const [answer] = await askMany(store, 1);
      remaining.push((answer as Answer).decision[0] === 0 ? ((answer as Answer).decision[2] as number) : -1);
    }
    // 1,000 admitted, remaining 999 … 0 in order (one worker: its block is all there is), then refusals.
    expect(remaining.slice(0, 1000)).toEqual(Array.from({ length: 1000 }, (_, i) => 999 - i));
    expect(remaining.slice(1000)).toEqual(Array(100).fill(-1));
    // 9 hub decisions; then each hub decision (used 10, 21, …, 978) brings a block of 10 while
    // 10 (1 worker × 10) stay in reserve after it: 89 of them cover 979 decisions; the last 12
    // (989 … 1000) and the 100 refusals are the hub's.
    const batches = link.sent.filter((m) => m.t === 'rl-b');
    expect(batches.length).toBe(9 + 89 + 12 + 100);
    expect(batches.every((m) => m.l === 1)).toBe(true);
  });

  it('a hub of the previous version (no rl-lease) gets the previous protocol: no l, no r, every decision asked', async () => {
    const { link, stores } = setup({ a: 1000 });
    const store = stores.a as ClusterStore;
    for (let i = 0; i < 50; i++) await askMany(store, 1);
    const batches = link.sent.filter((m) => m.t === 'rl-b');
    expect(batches).toHaveLength(50);
    expect(batches.some((m) => 'l' in m || 'r' in m)).toBe(false);
    expect(link.sent.some((m) => m.t === 'rl-r')).toBe(false);
  });
});
