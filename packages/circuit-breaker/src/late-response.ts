/**
 * Discarding the app's late response after a time budget ran out.
 *
 * When the breaker has answered 504 (or a fallback answered), the app is still running
 * and will write eventually. Node would then throw `ERR_HTTP_HEADERS_SENT` from
 * `setHeader`/`writeHead` (a crash in async code) or emit `ERR_STREAM_WRITE_AFTER_END`
 * from `write`/`end` (an `'error'` event nobody listens to: another crash). So every
 * method that writes the head or the body is replaced on this one response by a no-op
 * that still calls the caller's callback, so the app's code finishes its flow normally.
 *
 * While the breaker itself answers, {@link LateResponseGuard.answer} lets writes through.
 */
import type { ServerResponse } from 'node:http';

const WRITING_METHODS = [
  'writeHead',
  'write',
  'end',
  'setHeader',
  'setHeaders',
  'appendHeader',
  'removeHeader',
  'flushHeaders',
  'addTrailers',
  'writeContinue',
  'writeProcessing',
  'writeEarlyHints',
] as const;

type AnyMethod = (this: ServerResponse, ...args: unknown[]) => unknown;

/** What a neutralised method returns to the app: the response for chainable ones, `true` for `write`. */
function stubResult(method: (typeof WRITING_METHODS)[number], res: ServerResponse): unknown {
  switch (method) {
    case 'write':
      return true;
    case 'writeHead':
    case 'end':
    case 'setHeader':
    case 'setHeaders':
    case 'appendHeader':
      return res;
    default:
      return undefined;
  }
}

/** Controls one neutralised response. */
export interface LateResponseGuard {
  /** Runs `write` with the real methods (the breaker's own answer), then discards again. */
  answer(write: () => void): void;
  /** How many calls from the app were discarded. */
  readonly discarded: number;
}

/**
 * Replaces the writing methods of `res` with no-ops. Returns a guard through which the
 * breaker writes its own answer.
 */
export function neutralise(res: ServerResponse): LateResponseGuard {
  let passthrough = false;
  let discarded = 0;
  const target = res as unknown as Record<string, AnyMethod | undefined>;
  for (const method of WRITING_METHODS) {
    const original = target[method];
    if (typeof original !== 'function') continue;
    target[method] = function discardLateWrite(this: ServerResponse, ...args: unknown[]): unknown {
      if (passthrough) return original.apply(this, args);
      discarded++;
      const last = args[args.length - 1];
      if ((method === 'write' || method === 'end') && typeof last === 'function') {
        queueMicrotask(last as () => void);
      }
      return stubResult(method, res);
    };
  }
  return {
    answer(write) {
      passthrough = true;
      try {
        write();
      } finally {
        passthrough = false;
      }
    },
    get discarded() {
      return discarded;
    },
  };
}
