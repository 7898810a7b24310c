/**
 * What a limiter does when a request is refused: count it (by problem code, in
 * `stats()` and the shared Prometheus registry), close the connection safely when the
 * body is left unread, and answer (problem+json, or the `onReject` override).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type Counter,
  counter,
  gateExpressErrorHandlers,
  markProblemSent,
  type OnceLogger,
  type Registry,
  sendProblem,
} from '@perfstack/core';
import { lingerOnClose } from './connection.js';
import { SIZE_LIMIT_CODES, type SizeLimitCode, type SizeLimitError } from './errors.js';
import type { RejectHandler } from './options.js';

/** What `stats()` returns: refusals by problem code. */
export interface SizeLimitStats {
  readonly rejected: Readonly<Record<SizeLimitCode, number>>;
}

/** Something with a timer that `close()` must clear. */
export interface TimerOwner {
  clearTimer(): void;
}

/** Counts, closes and answers refusals for one limiter. */
export class Enforcer {
  readonly logger: OnceLogger;
  readonly lingerTimeout: number;
  readonly #onReject: RejectHandler | undefined;
  readonly #counts: Record<SizeLimitCode, number>;
  readonly #metric: Counter<'code'> | undefined;
  readonly #timers = new Set<TimerOwner>();
  #closed = false;

  constructor(logger: OnceLogger, registry: Registry | undefined, onReject: RejectHandler | undefined, linger: number) {
    this.logger = logger;
    this.lingerTimeout = linger;
    this.#onReject = onReject;
    this.#counts = Object.fromEntries(SIZE_LIMIT_CODES.map((code) => [code, 0])) as Record<SizeLimitCode, number>;
    this.#metric =
      registry === undefined
        ? undefined
        : counter(registry, {
            name: 'perfstack_size_limit_rejected_total',
            help: 'Requests refused by the size limit, by problem code',
            labelNames: ['code'],
          });
  }

  /** True once `close()` ran: no new body timers are started. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Refuses a request.
   *
   * @param closeConnection true when the body is (partly) unread: the answer carries
   *   `Connection: close` and the socket lingers before it closes
   */
  reject(req: IncomingMessage, res: ServerResponse, error: SizeLimitError, closeConnection: boolean): void {
    // A body parser that started reading reports the refused body afterwards (`next(err)`):
    // it must not reach the app's error handler, which would answer a second time.
    gateExpressErrorHandlers(req);
    this.#counts[error.code]++;
    this.#metric?.inc({ code: error.code });
    if (res.headersSent) {
      // The app answered before it read the body (a streaming echo, say): the status
      // cannot change any more, and the body must not be read on. End the exchange.
      this.logger.warnOnce(
        'SIZE_LIMIT_HEADERS_SENT',
        'a request body was refused after the response had started, so only closing the connection could stop it',
        { code: error.code, url: req.url },
      );
      req.socket?.destroy();
      return;
    }
    if (closeConnection) {
      res.setHeader('Connection', 'close');
      lingerOnClose(req.socket, this.lingerTimeout);
    }
    if (this.#onReject === undefined) {
      sendProblem(res, error, req.method);
      return;
    }
    markProblemSent(res, error.code);
    try {
      this.#onReject(error, req, res);
    } catch (thrown) {
      this.logger.errorOnce('SIZE_LIMIT_ON_REJECT_FAILED', 'onReject threw; the default answer was sent', {
        error: thrown instanceof Error ? thrown.message : String(thrown),
      });
      sendProblem(res, error, req.method);
    }
  }

  track(owner: TimerOwner): void {
    this.#timers.add(owner);
  }

  untrack(owner: TimerOwner): void {
    this.#timers.delete(owner);
  }

  stats(): SizeLimitStats {
    return { rejected: { ...this.#counts } };
  }

  close(): void {
    this.#closed = true;
    for (const owner of this.#timers) owner.clearTimer();
    this.#timers.clear();
  }
}
