/**
 * The log destination. Paths and file descriptors are opened with
 * `pino.destination({ sync: false })` (sonic-boom): lines are buffered (up to 4 KB or one
 * second) and written asynchronously, so logging never blocks the request on a disk or a
 * pipe; pino flushes what is waiting when the process exits, and `close()` does too. A stream the
 * caller passes is theirs: written to, never ended.
 *
 * The lines are gathered here, joined into one string, and handed to sonic-boom a 4 KB chunk
 * at a time (and whenever sonic-boom flushes: its one-second timer, the exit flush, `close()`).
 * Handed one line at a time, sonic-boom measured the UTF-8 length of every line and of its
 * whole waiting buffer on each write, flattening both strings each time: a few kilobytes of
 * copies and garbage per request.
 *
 * pino is given a small gate in front of the destination, so that once `close()` has run,
 * a late line (a request still in flight, an app's `req.log` call) is dropped instead of
 * throwing on a closed sonic-boom.
 */
import type { OnceLogger } from '@perfstack/core';
import { destination as pinoDestination } from 'pino';
import type { LogStream } from './options.js';

/**
 * Lines are gathered until this many bytes are waiting (a few dozen lines), then written
 * in one `write(2)` instead of one per line; never `fsync`ed.
 */
const BUFFER_BYTES = 4096;

/** What is waiting is written at least this often (sonic-boom's `unref()`ed timer), so a quiet server's lines still appear. */
const FLUSH_INTERVAL_MS = 1000;

/** An open destination behind its gate. */
export interface OpenedDestination {
  /** What pino writes to. */
  readonly stream: { write(line: string): void };
  /** Flushes what is buffered; ends what this module opened; drops later lines. */
  close(): Promise<void>;
}

/**
 * Opens `target` (see `AccessLogOptions.destination`).
 *
 * @param target a stream, a file path or a file descriptor
 * @param once where a destination error is reported, once
 * @returns the gated stream and its `close()`
 */
export function openDestination(target: LogStream | string | number, once: OnceLogger): OpenedDestination {
  let open = true;
  if (typeof target === 'object') {
    const stream = target as LogStream & Partial<NodeJS.WritableStream> & { writableNeedDrain?: boolean };
    return {
      stream: {
        write(line: string): void {
          if (open) stream.write(line);
        },
      },
      close(): Promise<void> {
        open = false;
        if (stream.writableNeedDrain !== true || typeof stream.once !== 'function') return Promise.resolve();
        return new Promise<void>((resolve) => {
          stream.once?.('drain', resolve);
          stream.once?.('close', resolve);
        });
      },
    };
  }
  const sonic = pinoDestination({
    dest: target,
    sync: false,
    mkdir: typeof target === 'string',
    minLength: BUFFER_BYTES,
    periodicFlush: FLUSH_INTERVAL_MS,
  });
  // Lines not yet handed to sonic-boom, joined (their length in UTF-16 units is at most their bytes).
  let pending = '';
  const hand = (): void => {
    if (pending === '') return;
    const chunk = pending;
    pending = '';
    sonic.write(chunk);
  };
  // Whatever flushes sonic-boom (its periodic timer, pino's exit hook, `end()` below) flushes
  // the gathered lines first: own properties on this instance, which sonic-boom calls through `this`.
  const destroyed = (): boolean => (sonic as unknown as { destroyed?: boolean }).destroyed === true;
  const flush = sonic.flush;
  const flushSync = sonic.flushSync;
  Object.assign(sonic, {
    flush(this: typeof sonic, cb?: (error?: Error) => unknown): void {
      if (!destroyed()) hand();
      flush.call(this, cb);
    },
    flushSync(this: typeof sonic): void {
      if (!destroyed()) hand();
      flushSync.call(this);
    },
  });
  let failed = false;
  sonic.on('error', (error: Error) => {
    failed = true;
    once.errorOnce('LOGGER_DESTINATION_ERROR', 'the access log destination failed; lines may be lost', {
      destination: typeof target === 'string' ? target : `fd ${target}`,
      error: error.message,
    });
  });
  let closing: Promise<void> | undefined;
  return {
    stream: {
      write(line: string): void {
        if (!open) return;
        pending += line;
        if (pending.length >= BUFFER_BYTES) hand();
      },
    },
    close(): Promise<void> {
      open = false;
      closing ??= new Promise<void>((resolve) => {
        if (failed || destroyed()) {
          resolve();
          return;
        }
        hand();
        sonic.once('close', () => resolve());
        sonic.once('error', () => resolve());
        sonic.end();
      });
      return closing;
    },
  };
}
