/**
 * The lazy body guard: how a limit that runs first still lets a route raise it.
 *
 * The stack's limiter runs before the router, so it cannot know that `/upload` takes
 * 20 MB. It therefore reads nothing itself: it arms a guard on the request and lets it
 * pass. The guard is three hooks on the request (the first two patched once on
 * `IncomingMessage.prototype`, acting only on a request with a guard):
 *
 * - `push`: Node's HTTP parser hands every body chunk to `IncomingMessage#push`
 *   (`parserOnBody` in lib/_http_common.js), so this counts every byte that arrives,
 *   whatever reads it later, and can drop bytes before anyone sees them;
 * - a `newListener` listener and `resume`: the first `'data'` or `'readable'` listener,
 *   `pipe()` or `resume()` is the moment someone starts reading.
 *
 * Until then the limit may still change (`sizeLimit.route()` sets it), and Node's own
 * back-pressure keeps what is buffered to one high-water mark, so nothing is decided.
 * When reading starts, the limit in force is checked against `Content-Length` (413
 * before the reader gets a byte) and then against every chunk as it arrives (413 the
 * moment a chunked body crosses it, the chunk dropped). A refused body is never
 * buffered: its chunks and its end are swallowed, the reader simply gets no more, the
 * answer carries `Connection: close` and the socket lingers, then closes.
 *
 * With `decompress`, chunks go through a zlib decoder first and the decoded bytes are
 * counted too, with back-pressure between the decoder and the request (zip-bomb safe).
 *
 * This is written by hand on Node streams rather than with raw-body or body-parser
 * because those consume the body: they would have to run first and decide at once, the
 * very ordering trap this avoids; see the README.
 */
import { IncomingMessage, type ServerResponse } from 'node:http';
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';
import type { OnceLogger } from '@perfstack/core';
import { lingerOnClose } from './connection.js';
import { limitForType } from './content-type.js';
import type { Enforcer, TimerOwner } from './enforcer.js';
import { SizeLimitError } from './errors.js';
import type { RouteSizeLimitConfig } from './options.js';

export const GUARD = Symbol.for('perfstack.sizeLimit.guard');

/**
 * A refused body with a `Content-Length` of which at most this many bytes are still to come
 * is read off and dropped instead of closing the connection: a keep-alive client then pays
 * for no new connection (under load, a 413 that closes cost several times a served request),
 * while a large body still closes at once.
 */
export const DRAIN_LIMIT = 64 * 1024;

/**
 * Refusals drained on one connection before it is closed anyway. A body parser that was
 * reading a refused body waits for the request to finish (on-finished), which then happens
 * only when the socket closes: each drained refusal leaves such a waiter on the socket, so a
 * client sending nothing but refused bodies gets a new connection every few refusals.
 */
export const MAX_DRAINS_PER_CONNECTION = 8;

const DRAINED = Symbol.for('perfstack.sizeLimit.drained');

type PushFn = (chunk: unknown, encoding?: BufferEncoding) => boolean;
type ReadFn = (size: number) => void;
type ResumeFn = () => IncomingMessage;

/** A request with a guard armed on it. */
export type GuardedRequest = IncomingMessage & {
  [GUARD]?: BodyGuard;
  push: PushFn;
  resume: ResumeFn;
  _read: ReadFn;
};

/** What a guard is armed with. */
export interface GuardSettings {
  /** Declared `Content-Length`, or -1 for a chunked body. */
  readonly contentLength: number;
  /** The body's media type, lowercased without parameters. */
  readonly mediaType: string;
  readonly limit: number;
  readonly bodyTimeout: number;
  readonly decompress: boolean;
}

/** The per-request state of one guarded body. */
export class BodyGuard implements TimerOwner {
  readonly req: GuardedRequest;
  readonly res: ServerResponse;
  readonly enforcer: Enforcer;
  readonly contentLength: number;
  readonly mediaType: string;
  limit: number;
  bodyTimeout: number;
  /** Bytes received on the wire. */
  received: number;
  /** Bytes after decoding (with a decoder only). */
  decoded = 0;
  /** Someone started reading the body. */
  reading = false;
  rejected = false;
  /** The end of the body was handed to the request. */
  ended = false;
  /** The body ended while over the limit and before anyone read it: its end is held back. */
  endHeld = false;
  /** The response was switched to `Connection: close` because the unread body is over the limit. */
  closing = false;
  /** The refused body is small enough to be read off and dropped, keeping the connection. */
  draining = false;
  /** `resume()` still means "reading starts" (until it does). */
  resumeHooked = false;
  timer: NodeJS.Timeout | undefined = undefined;
  decoder: Transform | undefined = undefined;
  encoding: string | undefined = undefined;
  readonly keepAlive: boolean;
  readonly push: PushFn;
  readonly resume: ResumeFn;
  read: ReadFn | undefined = undefined;

  constructor(req: GuardedRequest, res: ServerResponse, enforcer: Enforcer, settings: GuardSettings) {
    this.req = req;
    this.res = res;
    this.enforcer = enforcer;
    this.contentLength = settings.contentLength;
    this.mediaType = settings.mediaType;
    this.limit = settings.limit;
    this.bodyTimeout = settings.bodyTimeout;
    // Bytes that arrived before the guard was armed (a layer in front of this one awaited).
    this.received = req.readableLength;
    this.keepAlive = res.shouldKeepAlive;
    const originals = installHooks();
    this.push = originals.push;
    this.resume = originals.resume;
  }

  isOver(): boolean {
    const limit = this.limit;
    return this.contentLength > limit || this.received > limit || this.decoded > limit;
  }

  /** Someone started reading: from now on the limit in force is final. */
  startReading(): void {
    if (this.reading || this.rejected) return;
    this.reading = true;
    const req = this.req;
    req.removeListener('newListener', onNewListener);
    this.resumeHooked = false;
    if (this.res.writableFinished) {
      // Node is discarding the body of an answered request (`req._dump()`): let it.
      if (this.endHeld) this.deliverEnd();
      return;
    }
    if (this.isOver()) {
      this.rejectTooLarge();
      // Drop what Node buffered before anyone read, so the reader never sees it.
      if (req.readableLength > 0 && req.readableFlowing !== true) while (req.read() !== null);
      return;
    }
    if (this.endHeld) this.deliverEnd();
    else if (this.bodyTimeout > 0 && !this.ended && !this.enforcer.closed) this.startTimer();
  }

  startTimer(): void {
    this.timer = setTimeout(onBodyTimeout, this.bodyTimeout, this);
    this.timer.unref();
    this.enforcer.track(this);
  }

  clearTimer(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.enforcer.untrack(this);
  }

  /** The wire body ended. */
  finish(): boolean {
    const decoder = this.decoder;
    if (decoder !== undefined) {
      decoder.end();
      return false;
    }
    return this.deliverEnd();
  }

  /** Hands the end of the body to the request, unless it must wait for a decision. */
  deliverEnd(): boolean {
    this.endHeld = false;
    if (!this.reading && this.isOver()) {
      // Over the limit in force, but a route may still raise it: decide when reading starts.
      this.endHeld = true;
      return false;
    }
    this.ended = true;
    this.clearTimer();
    return this.push.call(this.req, null);
  }

  /** A decoded chunk came out of the decoder. */
  onDecoded(chunk: Buffer): void {
    if (this.rejected) return;
    this.decoded += chunk.length;
    if (!this.reading) {
      if (this.req.readableFlowing !== null) this.startReading();
    } else if (this.decoded > this.limit) {
      this.rejectTooLarge();
    }
    if (this.rejected) return;
    if (!this.push.call(this.req, chunk)) this.decoder?.pause();
  }

  /** Lets a route set its own limit and body timeout (`sizeLimit.route()`). */
  applyRoute(route: RouteSizeLimitConfig, logger: OnceLogger): void {
    const limit = limitForType(route.limits, this.mediaType) ?? route.limit;
    if (limit !== undefined) this.limit = limit;
    if (route.bodyTimeout !== undefined) {
      this.bodyTimeout = route.bodyTimeout;
      if (this.timer !== undefined) {
        this.clearTimer();
        if (this.bodyTimeout > 0) this.startTimer();
      }
    }
    if (this.rejected) return;
    if (this.reading) {
      logger.warnOnce(
        'SIZE_LIMIT_ROUTE_AFTER_READ',
        'sizeLimit.route() ran after the body was being read, so it could not raise the limit; put it before the body parser',
        { url: this.req.url },
      );
      if (this.isOver()) this.rejectTooLarge();
      return;
    }
    this.closeIfTooLarge();
  }

  /**
   * A body over the limit that nobody reads is drained by Node after the answer to keep
   * the connection (`req._dump()`); close the connection instead. Undone when a route
   * raises the limit above the declared length.
   */
  closeIfTooLarge(): void {
    const over = this.contentLength > this.limit;
    if (over === this.closing) return;
    this.closing = over;
    if (this.res.headersSent) return;
    this.res.shouldKeepAlive = over ? false : this.keepAlive;
    if (over) lingerOnClose(this.req.socket, this.enforcer.lingerTimeout);
  }

  rejectTooLarge(): void {
    const limit = this.limit;
    if (this.contentLength > limit) {
      const length = this.contentLength;
      this.reject(
        new SizeLimitError(
          'PAYLOAD_TOO_LARGE',
          `The request body of ${length} bytes is larger than the limit of ${limit} bytes.`,
          { limit, contentLength: length },
        ),
      );
    } else if (this.decoded > limit) {
      this.reject(
        new SizeLimitError(
          'PAYLOAD_TOO_LARGE',
          `The decoded request body is larger than the limit of ${limit} bytes.`,
          { limit, decoded: this.decoded, encoding: this.encoding },
        ),
      );
    } else {
      this.reject(
        new SizeLimitError('PAYLOAD_TOO_LARGE', `The request body is larger than the limit of ${limit} bytes.`, {
          limit,
          received: this.received,
        }),
      );
    }
  }

  /** Stops the body for good and answers. */
  reject(error: SizeLimitError): void {
    if (this.rejected) return;
    this.rejected = true;
    this.endHeld = false;
    this.clearTimer();
    const req = this.req;
    req.removeListener('newListener', onNewListener);
    this.resumeHooked = false;
    // A small rest of a Content-Length body is dropped as it arrives (guardedPush), and the
    // connection kept; anything else closes it (see connection.ts).
    this.draining =
      error.code === 'PAYLOAD_TOO_LARGE' &&
      this.decoder === undefined &&
      this.keepAlive &&
      this.contentLength >= 0 &&
      this.contentLength - this.received <= DRAIN_LIMIT &&
      countDrain(req.socket);
    if (this.draining && this.closing && !this.res.headersSent) {
      // closeIfTooLarge() gave up the connection while nobody read; draining keeps it.
      this.closing = false;
      this.res.shouldKeepAlive = this.keepAlive;
    }
    if (this.decoder !== undefined) {
      this.decoder.destroy();
      this.decoder = undefined;
    }
    this.enforcer.reject(req, this.res, error, !this.draining);
    // A client that stops sending the rest does not keep the connection: after the linger
    // time, an unfinished drained body closes it like any refused body.
    if (this.draining && !req.complete) setTimeout(closeUndrained, this.enforcer.lingerTimeout, req).unref();
  }

  /** Sets up decoding of a `Content-Encoding` this layer knows; leaves others alone. */
  startDecoding(contentEncoding: string | undefined): void {
    if (contentEncoding === undefined) return;
    const encoding = contentEncoding.trim().toLowerCase();
    let decoder: Transform;
    if (encoding === 'gzip' || encoding === 'x-gzip') decoder = zlib.createGunzip();
    else if (encoding === 'deflate') decoder = zlib.createInflate();
    else if (encoding === 'br') decoder = zlib.createBrotliDecompress();
    else return;
    this.decoder = decoder;
    this.encoding = encoding;
    decoder.on('data', (chunk: Buffer) => this.onDecoded(chunk));
    decoder.on('end', () => {
      if (!this.rejected) this.deliverEnd();
    });
    decoder.on('error', () => {
      this.reject(
        new SizeLimitError('BAD_REQUEST', `The request body could not be decoded as ${encoding}.`, { encoding }),
      );
    });
    const req = this.req;
    this.read = req._read;
    req._read = guardedRead;
    // Downstream parsers get plain bytes of unknown length.
    const headers = req.headers;
    delete headers['content-encoding'];
    delete headers['content-length'];
    if (headers['transfer-encoding'] === undefined) headers['transfer-encoding'] = 'chunked';
  }
}

const HOOKED = Symbol.for('perfstack.sizeLimit.hooks');

interface Originals {
  readonly push: PushFn;
  readonly resume: ResumeFn;
}

/**
 * Patches `IncomingMessage.prototype.push` and `resume` once per process, to pass to the
 * guard of a request that has one ({@link GUARD}). Own `push`/`resume` properties per request
 * were the alternative; on Express's requests (their prototype is swapped per request) each
 * such property costs V8 a new hidden class per request (see core's shapes.ts). The
 * originals are kept on the prototype under a global symbol, so two copies of this package
 * in one process share one patch.
 */
function installHooks(): Originals {
  const proto = IncomingMessage.prototype as unknown as GuardedRequest & { [HOOKED]?: Originals };
  const installed = proto[HOOKED];
  if (installed !== undefined) return installed;
  const originals: Originals = { push: proto.push, resume: proto.resume };
  proto.push = function sizeLimitPush(this: GuardedRequest, chunk: unknown, encoding?: BufferEncoding): boolean {
    return this[GUARD] === undefined
      ? originals.push.call(this, chunk, encoding)
      : guardedPush.call(this, chunk, encoding);
  };
  proto.resume = function sizeLimitResume(this: GuardedRequest): IncomingMessage {
    return this[GUARD]?.resumeHooked === true ? guardedResume.call(this) : originals.resume.call(this);
  };
  Object.defineProperty(proto, HOOKED, { value: originals });
  return originals;
}

/** Every body chunk from Node's HTTP parser passes here when the request has a guard. */
function guardedPush(this: GuardedRequest, chunk: unknown, encoding?: BufferEncoding): boolean {
  const guard = this[GUARD] as BodyGuard;
  // A refused body is dropped, its end too (the reader never sees the request complete, so
  // no parser reports a second error). Returning false pauses the socket until the answer
  // is out; after that, the lingering close drains what the client still sends (see
  // connection.ts). A draining body keeps the socket reading: the next request follows it.
  if (guard.rejected) return guard.draining || guard.res.writableFinished;
  if (chunk === null) return guard.finish();
  guard.received += (chunk as Buffer).length;
  if (!guard.reading) {
    // resume() without a listener (body-parser's dump, say) starts reading too.
    if (this.readableFlowing !== null) guard.startReading();
  } else if (guard.received > guard.limit) {
    guard.rejectTooLarge();
  }
  if (guard.rejected) return true;
  const decoder = guard.decoder;
  if (decoder !== undefined) return decoder.write(chunk);
  return guard.push.call(this, chunk, encoding);
}

/**
 * Counts a drained refusal on `socket`; false once it had {@link MAX_DRAINS_PER_CONNECTION}.
 * Each drained refusal may leave a body parser's waiter (a `'close'` listener) on the socket
 * until it closes, which is bounded by that cap: the socket's listener budget grows by one
 * per drain, so a flood of refused bodies does not print Node's "possible EventEmitter
 * memory leak" warning for every connection.
 */
function countDrain(socket: (IncomingMessage['socket'] & { [DRAINED]?: number }) | null | undefined): boolean {
  if (socket === null || socket === undefined) return false;
  const drained = (socket[DRAINED] ?? 0) + 1;
  socket[DRAINED] = drained;
  if (drained > MAX_DRAINS_PER_CONNECTION) return false;
  const max = socket.getMaxListeners();
  if (max !== 0 && max !== Number.POSITIVE_INFINITY) socket.setMaxListeners(max + 1);
  return true;
}

function closeUndrained(req: IncomingMessage): void {
  if (!req.complete) req.socket?.destroy();
}

/** `req.resume()` until reading starts: `pipe()`, `on('data')` and `resume()` all call it. */
function guardedResume(this: GuardedRequest): IncomingMessage {
  const guard = this[GUARD] as BodyGuard;
  guard.startReading();
  return guard.resume.call(this);
}

/** Replaces `req._read` with a decoder: a reader that wants more resumes the decoder. */
function guardedRead(this: GuardedRequest, size: number): void {
  const guard = this[GUARD] as BodyGuard;
  const decoder = guard.decoder;
  if (decoder?.isPaused()) decoder.resume();
  (guard.read as ReadFn).call(this, size);
}

function onNewListener(this: GuardedRequest, event: string | symbol): void {
  if (event === 'data' || event === 'readable') this[GUARD]?.startReading();
}

function onBodyTimeout(guard: BodyGuard): void {
  guard.timer = undefined;
  guard.enforcer.untrack(guard);
  // A finished exchange (the app answered without reading all of the body) is left to
  // Node's own request timeouts: there is nobody left to answer.
  if (guard.ended || guard.rejected || guard.req.destroyed || guard.res.writableFinished) return;
  guard.reject(
    new SizeLimitError('BODY_TIMEOUT', `The request body did not arrive within ${guard.bodyTimeout} ms.`, {
      timeout: guard.bodyTimeout,
      received: guard.received,
    }),
  );
}

/** The guard armed on `req`, if any. */
export function guardOf(req: IncomingMessage): BodyGuard | undefined {
  return (req as GuardedRequest)[GUARD];
}

/**
 * Arms a guard on a request with a body. Nothing is read; see the module comment.
 *
 * @returns the guard (already rejected when the body is refused at once)
 */
export function armBodyGuard(
  req: IncomingMessage,
  res: ServerResponse,
  enforcer: Enforcer,
  settings: GuardSettings,
): BodyGuard {
  const guarded = req as GuardedRequest;
  const guard = new BodyGuard(guarded, res, enforcer, settings);
  guarded[GUARD] = guard;
  if (settings.decompress) guard.startDecoding(req.headers['content-encoding']);
  if (guarded.readableFlowing !== null) {
    guard.startReading();
  } else {
    guard.resumeHooked = true;
    guarded.on('newListener', onNewListener);
    guard.closeIfTooLarge();
  }
  return guard;
}
