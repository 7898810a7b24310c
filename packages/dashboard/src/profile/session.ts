/**
 * A short-lived `node:inspector` session on this very process (no port is opened: the
 * session talks to V8 in-process), connected for one operation and always disconnected.
 */
import { Session } from 'node:inspector/promises';

/**
 * Runs `work` with a connected session; disconnects afterwards, whatever happens.
 *
 * @param work what to do with the session
 * @returns what `work` returns
 */
export async function withSession<T>(work: (session: Session) => Promise<T>): Promise<T> {
  const session = new Session();
  session.connect();
  try {
    return await work(session);
  } finally {
    session.disconnect();
  }
}

/**
 * Waits `ms`, or less when `signal` aborts (the client went away or the dashboard closed):
 * the operation then finishes early instead of running on for nobody.
 */
export function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve();
      return;
    }
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    timer.unref();
    signal.addEventListener('abort', done, { once: true });
  });
}
