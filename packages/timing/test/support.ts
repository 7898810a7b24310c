/** Shared pieces of the timing tests: a controllable clock and a quiet, timer-free timing. */
import net from 'node:net';
import { silentLogger } from '@perfstack/core';
import { type Timing, type TimingOptions, timing } from '@perfstack/timing';

/** A clock the test moves by hand. */
export interface FakeClock {
  now(): number;
  advance(ms: number): void;
  set(ms: number): void;
}

/** A fake clock starting on a slot boundary (a multiple of 10 min), so window math is exact. */
export function fakeClock(start = 1_700_000_400_000): FakeClock {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
    set(ms) {
      t = ms;
    },
  };
}

const open: Timing[] = [];

/** A timing whose sample timer never ticks on its own (tests call `sample()`), closed by {@link closeAll}. */
export function quietTiming(options: TimingOptions = {}): Timing {
  const t = timing({ logger: silentLogger, sampleInterval: '1h', defaultMetrics: false, ...options });
  open.push(t);
  return t;
}

/** Closes every timing made by {@link quietTiming}. */
export async function closeAll(): Promise<void> {
  await Promise.all(open.splice(0).map((t) => t.close()));
}

/**
 * Sends GET `paths` to `url` as pipelined HTTP/1.1 requests over a few raw sockets (fast:
 * tens of thousands of requests in a second or two) and resolves with how many responses
 * came back with each status (a small object, so a memory test does not hold 100k numbers).
 * Response bodies must not contain "HTTP/1.1 ".
 */
export async function blast(
  url: string,
  paths: readonly string[],
  sockets = 4,
  batch = 500,
): Promise<Record<number, number>> {
  const { port } = new URL(url);
  const statuses: Record<number, number> = {};
  const queue = [...paths];
  const worker = async (): Promise<void> => {
    const socket = net.connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.setNoDelay(true);
    try {
      while (queue.length > 0) {
        const chunk = queue.splice(0, batch);
        const done = new Promise<void>((resolve, reject) => {
          let buffered = '';
          let seen = 0;
          const onData = (data: Buffer) => {
            buffered += data.toString('latin1');
            let at = buffered.indexOf('HTTP/1.1 ');
            while (at !== -1 && buffered.length >= at + 12) {
              const status = Number(buffered.slice(at + 9, at + 12));
              statuses[status] = (statuses[status] ?? 0) + 1;
              seen++;
              buffered = buffered.slice(at + 12);
              at = buffered.indexOf('HTTP/1.1 ');
            }
            if (seen === chunk.length) {
              socket.off('data', onData);
              socket.off('error', reject);
              resolve();
            }
          };
          socket.on('data', onData);
          socket.once('error', reject);
        });
        socket.write(chunk.map((path) => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`).join(''));
        await done;
      }
    } finally {
      socket.destroy();
    }
  };
  await Promise.all(Array.from({ length: sockets }, worker));
  return statuses;
}
