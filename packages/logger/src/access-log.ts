/**
 * `accessLog()`: one JSON line per request through pino-http, redacted by default.
 *
 * Each line carries the request id (`reqId`, also on every `req.log` line of the request),
 * the request as logged (method, URL with secret query values censored, headers with
 * credentials censored, remote address), the route pattern beside it, the response
 * (status, headers without `Set-Cookie` values) and the response time in milliseconds.
 * Levels follow the status: 5xx `error`, 4xx `warn`, anything else `info`; the stack's own
 * refusals are `warn` and aggregated (see `refusals.ts`). A 5xx that no error caused carries
 * no `err` (pino-http would invent one, with a stack pointing into pino-http); an error the
 * app threw or passed on, once recorded, is logged with its own stack, redacted.
 *
 * `close()` waits (up to `closeTimeout`) for the requests in flight, so that every request
 * served gets its line, then writes the refusal summaries still owed and flushes.
 *
 * Everything costly is built here, once: the sensitive-key matcher, the compiled value
 * patterns, the serializers and the ignore set (ARCHITECTURE.md rule 6).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type ClosableMiddleware,
  checkOptionsObject,
  ensureRequestId,
  type NextFunction,
  OnceLogger,
  optionRangeError,
  pathOf,
  readNumber,
  readString,
  refusalOf,
  requestErrorOf,
  routeLabel,
  traceFields,
  warmShapes,
} from '@perfstack/core';
import type { Logger } from 'pino';
import { type HttpLogger, pinoHttp } from 'pino-http';
import { openDestination } from './destination.js';
import { redactLogArguments } from './log-arguments.js';
import { type AccessLogLevel, type AccessLogOptions, LOG_LEVELS, PKG, resolveAccessLogConfig } from './options.js';
import { DeepRedactor } from './redact/deep.js';
import { HeaderRedactor } from './redact/headers.js';
import { SensitiveKeys } from './redact/keys.js';
import { createStringRedactor } from './redact/strings.js';
import { UrlRedactor } from './redact/url.js';
import { RefusalAggregator } from './refusals.js';
import { createSerializers } from './serializers.js';

/** Longest string logged as it is (longer ones are cut, and the cut is marked). */
export const MAX_STRING_LENGTH = 4096;

/** Longest URL logged as it is. */
export const MAX_URL_LENGTH = 4096;

/** Marks the access line's own object, already redacted, so `formatters.log` skips it. */
const ACCESS_LINE = Symbol('perfstack.logger.accessLine');

/** An error recorded for the request's access line. */
const RECORDED_ERROR = Symbol.for('perfstack.logger.error');

/** Keys with their own serializer: `formatters.log` and child bindings leave them to it. */
const SERIALIZED_KEYS: ReadonlySet<string> = new Set(['req', 'res', 'err']);

/** True when `key` is the only own enumerable key of `object` (no array built, unlike `Object.keys`). */
function onlyKey(object: Record<string, unknown>, key: string): boolean {
  for (const name in object) if (name !== key && Object.hasOwn(object, name)) return false;
  return true;
}

type LoggedRequest = IncomingMessage & {
  originalUrl?: unknown;
  body?: unknown;
  ip?: unknown;
  [RECORDED_ERROR]?: unknown;
};

/**
 * The client a refusal is aggregated under: Express's `req.ip` (which follows the app's
 * `trust proxy` setting), else the socket's address. Never a rate-limit key, which an app
 * may build from a credential.
 */
function clientOf(req: IncomingMessage): string {
  const ip = (req as LoggedRequest).ip;
  if (typeof ip === 'string' && ip !== '') return ip;
  return req.socket?.remoteAddress ?? 'unknown';
}

/** The middleware `accessLog()` returns. */
export interface AccessLogger extends ClosableMiddleware {
  /** The pino logger lines go through (pino-http's root logger). */
  readonly logger: Logger;
  /**
   * Records `error` as the cause of the request's failure, so the access line logs it
   * (redacted) instead of a bare "failed with status code 500". For `withMiddleware`'s
   * `onError`, Koa's `app.on('error')`, or your own error handler.
   */
  recordError(req: IncomingMessage, error: unknown): void;
  /**
   * @internal For a refusal the stack answers before the access log runs (perfstack's early
   * refusals): `true` when this log would write no line for it — the request is ignored, the
   * level is above `warn`, or the refusal's line falls inside its aggregation interval (it is
   * then counted among the lines left out, exactly as if it had been logged and suppressed).
   * `false` means the line is due: the stack then sends the request down the usual path.
   *
   * @param client the client as the log aggregates it (Express's `req.ip`, else the socket's address)
   */
  quietRefusal(req: IncomingMessage, code: string, client: string): boolean;
  /** An Express error-handling middleware that calls {@link recordError} and passes the error on. */
  readonly errorHandler: (error: unknown, req: IncomingMessage, res: ServerResponse, next: NextFunction) => void;
  /**
   * Changes, at runtime (the dashboard's settings), the lowest level written and the share of
   * successful requests logged, from the next request on. Validated like the options.
   *
   * @throws {TypeError|RangeError} naming the option
   */
  tune(tuning: { readonly level?: AccessLogLevel; readonly sampleRate?: number }): void;
  /** The tunable values in force. */
  tunables(): { readonly level: AccessLogLevel; readonly sampleRate: number };
}

/**
 * Creates the access-log middleware.
 *
 * @param options see {@link AccessLogOptions}; every option is optional
 * @returns a Connect middleware with `logger`, `recordError`, `errorHandler` and `close()`
 * @throws {TypeError} on an unknown option or a value of the wrong type
 * @throws {RangeError} on a value out of range (e.g. `sampleRate: 2`)
 * @example
 * const log = accessLog({ destination: '/var/log/app/access.log', ignore: ['/health'] });
 * app.use(log);
 * app.get('/users/:id', (req, res) => { req.log.info('looked up'); res.json({}); });
 * app.use(log.errorHandler);
 * // on shutdown: await log.close();
 */
export function accessLog(options?: AccessLogOptions): AccessLogger {
  const config = resolveAccessLogConfig(options);
  const { censor, logBody, requestIdHeader, ignoreExact, ignorePrefixes } = config;
  // Runtime settings (`tune`) replace it; read once per successful request.
  let sampleRate = config.sampleRate;
  const keys = new SensitiveKeys(config.sensitiveKeys);
  const string = createStringRedactor({
    censor,
    keyFragments: keys.fragments,
    shortKeys: keys.shortEntries,
    maxLength: MAX_STRING_LENGTH,
  });
  const deep = new DeepRedactor(keys, string, censor);
  const url = new UrlRedactor(string, deep, censor, MAX_URL_LENGTH);
  const headers = new HeaderRedactor(config.redactHeaders, deep, string, url, censor, config.headers);
  const serializers = createSerializers(deep, headers, url, requestIdHeader);

  const ignorePredicate = config.ignorePredicate;
  const isIgnored = (req: IncomingMessage): boolean => {
    if (ignorePredicate !== undefined) return ignorePredicate(req);
    if (ignoreExact.size === 0 && ignorePrefixes.length === 0) return false;
    const original = (req as LoggedRequest).originalUrl;
    const path = pathOf(typeof original === 'string' ? original : req.url);
    if (ignoreExact.has(path)) return true;
    for (const prefix of ignorePrefixes) if (path.startsWith(prefix)) return true;
    return false;
  };

  // Per finished request, set by `customLogLevel` and read by `accessLine` in the same
  // synchronous pino-http call (`onResFinished`): the real error, if any, and the
  // refusal's count of lines left out.
  let finishedError: unknown;
  let refused: string | undefined;
  let suppressed = 0;
  // The ignore decision of the request pino-http is being called for (it asks synchronously).
  let ignoringCurrent = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  /** Completes pino-http's object for the access line: the route, the error recorded, the body. */
  const accessLine = (req: IncomingMessage, value: Record<string | symbol, unknown>) => {
    // Read when the response has finished: a route that answered leaves Express's
    // `req.route`/`req.baseUrl` (and @koa/router's `_matchedRoute`) in place, and a pattern
    // pinned earlier by another layer (timing's `captureRoute`) wins.
    value.route = routeLabel(req);
    if ('err' in value) {
      // recorded here, thrown at pino-http, or seen by core's adapters (Express error
      // handlers, Koa, node:http)
      const recorded = (req as LoggedRequest)[RECORDED_ERROR] ?? finishedError ?? requestErrorOf(req);
      // No error caused this 5xx: pino-http's stand-in error (and its stack) says nothing.
      if (recorded === undefined) delete value.err;
      else value.err = recorded;
    }
    if (refused !== undefined) {
      value.refused = refused;
      if (suppressed > 0) value.suppressed = suppressed;
    }
    if (logBody) {
      const body = (req as LoggedRequest).body;
      if (typeof body === 'object' && body !== null && !Buffer.isBuffer(body)) value.body = deep.value(body);
    }
    value[ACCESS_LINE] = true;
    return value;
  };

  /**
   * pino-http binds `{ req }` once per request (one child logger, as plain pino-http does);
   * the request id is added beside it, so every line of the request (the access line and
   * each `req.log` call) carries a top-level `reqId`. Other bindings (an app's
   * `req.log.child({...})`) are redacted like logged fields. pino applies
   * `formatters.bindings` to the root only, hence a wrapper around `child`.
   */
  const childBindings = (bindings: Record<string, unknown>): Record<string, unknown> => {
    const req = bindings.req as IncomingMessage | undefined;
    if (typeof req === 'object' && req !== null && typeof req.headers === 'object') {
      const id = (req as { id?: unknown }).id;
      // A generated id is ours (a UUID); only an id the client sent is checked for secrets.
      if (typeof id === 'string' && onlyKey(bindings, 'req')) {
        const reqId = req.headers[requestIdHeader] === id ? string(id) : id;
        // OpenTelemetry: the request's span, when the app traces (nothing otherwise).
        const trace = traceFields(req);
        return trace === undefined ? { reqId, req } : { reqId, ...trace, req };
      }
    }
    return deep.fields(bindings, SERIALIZED_KEYS);
  };

  // pino writes to a gate, opened after pino-http is built, so a bad option opens nothing.
  let target: { write(line: string): void } | undefined;
  let httpLogger: HttpLogger<IncomingMessage, ServerResponse>;
  try {
    httpLogger = pinoHttp<IncomingMessage, ServerResponse>(
      {
        level: config.level,
        serializers,
        wrapSerializers: false,
        redact: config.redactPaths.length > 0 ? { paths: [...config.redactPaths], censor } : undefined,
        genReqId: (req, res) => ensureRequestId(req, res, requestIdHeader),
        autoLogging: { ignore: () => ignoringCurrent },
        customLogLevel(req, res, error) {
          // Called exactly once per logged request, as it finishes; its line is written
          // synchronously after this returns, before `close()`'s wait can resume.
          if (--inFlight <= 0 && drained !== undefined) drained();
          finishedError = error ?? res.err;
          refused = undefined;
          const code = refusalOf(res);
          if (code !== undefined && finishedError === undefined) {
            const left = refusals.admit(code, clientOf(req));
            if (left < 0) return 'silent';
            refused = code;
            suppressed = left;
            return 'warn';
          }
          if (finishedError !== undefined || res.statusCode >= 500) return 'error';
          if (res.statusCode >= 400) return 'warn';
          if (sampleRate < 1 && !(Math.random() < sampleRate)) return 'silent';
          return 'info';
        },
        customSuccessObject: (req, _res, value) => accessLine(req, value),
        customErrorMessage: (req, res) =>
          finishedError === undefined &&
          (req as LoggedRequest)[RECORDED_ERROR] === undefined &&
          requestErrorOf(req) === undefined
            ? `request completed with status ${res.statusCode}`
            : 'request errored',
        customErrorObject: (req, _res, _error, value) => accessLine(req, value),
        formatters: {
          log: (fields) =>
            (fields as { [ACCESS_LINE]?: true })[ACCESS_LINE] ? fields : deep.fields(fields, SERIALIZED_KEYS),
        },
        hooks: {
          logMethod(args, method) {
            redactLogArguments(args as unknown[], string, deep);
            return method.apply(this, args);
          },
        },
      },
      { write: (line: string) => target?.write(line) },
    );
  } catch (error) {
    if (config.redactPaths.length > 0) {
      throw optionRangeError(
        PKG,
        'redact',
        config.redactPaths,
        `valid pino redact paths (${(error as Error).message})`,
      );
    }
    throw error;
  }
  const root = httpLogger.logger;
  const pinoChild = root.child;
  // Own property on the root: every child (created with Object.create) inherits it.
  root.child = function redactedChild(this: Logger, bindings: Record<string, unknown>, childOptions?: unknown) {
    return pinoChild.call(this, childBindings(bindings), childOptions as Parameters<Logger['child']>[1]);
  } as Logger['child'];
  const destination = openDestination(config.destination, new OnceLogger(config.logger));
  target = destination.stream;
  const refusals = new RefusalAggregator(config.refusalIntervalMs, (summary) => {
    root.warn(summary, 'refusals suppressed');
  });

  const middleware = function accessLogMiddleware(req: IncomingMessage, res: ServerResponse, next: NextFunction) {
    warmShapes(req, res);
    ignoringCurrent = isIgnored(req);
    if (!ignoringCurrent) inFlight++;
    httpLogger(req, res, next);
  } as AccessLogger & { logger: Logger };

  /** Resolves when no logged request is in flight, or after `closeTimeout`. */
  const settle = (): Promise<void> => {
    if (inFlight <= 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(done, config.closeTimeoutMs);
      function done(): void {
        clearTimeout(timer);
        drained = undefined;
        resolve();
      }
      drained = done;
    });
  };

  const quietRefusal = (req: IncomingMessage, code: string, client: string): boolean =>
    isIgnored(req) || !root.isLevelEnabled('warn') || refusals.suppress(code, client);

  const recordError = (req: IncomingMessage, error: unknown): void => {
    (req as LoggedRequest)[RECORDED_ERROR] = error;
  };
  let closing: Promise<void> | undefined;
  Object.assign(middleware, {
    logger: root,
    tune(tuning: { readonly level?: AccessLogLevel; readonly sampleRate?: number }): void {
      const checked = checkOptionsObject(PKG, 'tune', tuning, ['level', 'sampleRate']);
      const level = readString<AccessLogLevel>(PKG, 'level', checked.level, root.level as AccessLogLevel, LOG_LEVELS);
      const rate = readNumber(PKG, 'sampleRate', checked.sampleRate, sampleRate, 0, 1);
      root.level = level;
      sampleRate = rate;
    },
    tunables: () => ({ level: root.level as AccessLogLevel, sampleRate }),
    recordError,
    quietRefusal,
    errorHandler: function accessLogErrorHandler(
      error: unknown,
      req: IncomingMessage,
      _res: ServerResponse,
      next: NextFunction,
    ): void {
      recordError(req, error);
      next(error);
    },
    close: (): Promise<void> => {
      closing ??= settle().then(() => {
        refusals.close();
        return destination.close();
      });
      return closing;
    },
  });
  return middleware;
}
