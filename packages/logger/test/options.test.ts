/** Construction-time validation: a table of bad option values, unknown keys, the `app.use(accessLog)` mistake. */
import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { createRegistry } from '@perfstack/core';
import { type AccessLogOptions, accessLog } from '@perfstack/logger';
import { describe, expect, it } from 'vitest';
import { Capture } from './capture.js';

type Bad = [option: string, value: unknown, error: typeof TypeError | typeof RangeError, message: RegExp];

const BAD: Bad[] = [
  ['destination', '', RangeError, /option "destination" must be a writable stream, a non-empty file path/],
  ['destination', -1, RangeError, /option "destination" must be .* got -1/],
  ['destination', 1.5, RangeError, /option "destination"/],
  ['destination', {}, TypeError, /option "destination" must be a writable stream/],
  ['destination', true, TypeError, /option "destination"/],
  ['redact', 'req.headers.x', TypeError, /option "redact" must be an array of non-empty pino redact paths/],
  ['redact', [1], TypeError, /option "redact"/],
  ['redact', [''], RangeError, /option "redact"/],
  ['redact', ['a[['], RangeError, /option "redact" must be valid pino redact paths/],
  ['redactHeaders', ['x bad'], RangeError, /option "redactHeaders" must be an array of header names, got "x bad"/],
  ['redactHeaders', 'authorization', TypeError, /option "redactHeaders"/],
  ['sensitiveKeys', [''], RangeError, /option "sensitiveKeys" must be an array of keys with at least one letter/],
  ['sensitiveKeys', ['-_'], RangeError, /option "sensitiveKeys"/],
  ['sensitiveKeys', [null], TypeError, /option "sensitiveKeys"/],
  [
    'ignore',
    ['health'],
    RangeError,
    /option "ignore" must be an array of paths starting with "\/", or a function \(req\) => boolean, got "health"/,
  ],
  ['ignore', '/health', TypeError, /option "ignore"/],
  ['logEndpoints', 'yes', TypeError, /option "logEndpoints"/],
  ['refusalInterval', -1, RangeError, /option "refusalInterval"/],
  ['refusalInterval', 'often', TypeError, /option "refusalInterval"/],
  ['closeTimeout', Number.POSITIVE_INFINITY, RangeError, /option "closeTimeout"/],
  ['closeTimeout', {}, TypeError, /option "closeTimeout"/],
  ['sampleRate', 1.5, RangeError, /option "sampleRate" must be a number from 0 to 1, got 1.5/],
  ['sampleRate', -0.1, RangeError, /option "sampleRate"/],
  ['sampleRate', Number.NaN, TypeError, /option "sampleRate"/],
  ['sampleRate', '0.5', TypeError, /option "sampleRate"/],
  [
    'level',
    'verbose',
    RangeError,
    /option "level" must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent"/,
  ],
  ['level', 30, TypeError, /option "level"/],
  ['headers', 'some', RangeError, /option "headers" must be one of "minimal", "all"/],
  ['headers', true, TypeError, /option "headers"/],
  ['logBody', 'yes', TypeError, /option "logBody" must be a boolean, got "yes"/],
  ['requestIdHeader', 'x request id', RangeError, /option "requestIdHeader" must be a header name/],
  ['requestIdHeader', 42, TypeError, /option "requestIdHeader" must be a string/],
  ['censor', '', RangeError, /option "censor" must be a non-empty string/],
  ['censor', null, TypeError, /option "censor"/],
  ['logger', console.log, TypeError, /option "logger" must be an object with warn\(\) and error\(\) methods/],
  ['logger', { warn() {} }, TypeError, /option "logger"/],
  ['registry', 'registry', TypeError, /option "registry"/],
  ['redis', 5, TypeError, /option "redis"/],
];

describe('accessLog() options', () => {
  it.each(BAD)('%s = %o is refused', (option, value, error, message) => {
    const build = () => accessLog({ destination: new Capture(), [option]: value } as AccessLogOptions);
    expect(build).toThrow(error);
    expect(build).toThrow(/^@perfstack\/logger: /);
    expect(build).toThrow(message);
  });

  it('refuses an unknown option, naming it', () => {
    expect(() => accessLog({ destinaton: 'x' } as unknown as AccessLogOptions)).toThrow(
      /^@perfstack\/logger: unknown option "destinaton" for accessLog\(\); known options: destination,/,
    );
  });

  it.each([[null], ['stdout'], [[]], [42]])('refuses %o as the options object', (value) => {
    expect(() => accessLog(value as unknown as AccessLogOptions)).toThrow(TypeError);
  });

  it('explains app.use(accessLog) without the call', () => {
    const req = new IncomingMessage(new Socket());
    req.method = 'GET';
    req.url = '/';
    expect(() => accessLog(req as unknown as AccessLogOptions)).toThrow(
      /call it first: app\.use\(accessLog\(\)\) not app\.use\(accessLog\)/,
    );
  });

  it('accepts every option and the SharedContext members', async () => {
    const log = accessLog({
      destination: new Capture(),
      redact: ['res.headers["x-internal"]'],
      redactHeaders: ['X-Tenant-Key'],
      sensitiveKeys: ['memberNumber'],
      ignore: [],
      sampleRate: 0.5,
      level: 'debug',
      logBody: true,
      requestIdHeader: 'x-correlation-id',
      censor: '***',
      headers: 'all',
      logEndpoints: true,
      refusalInterval: '30s',
      closeTimeout: 2000,
      registry: createRegistry(),
      logger: { warn() {}, error() {} },
    });
    expect(typeof log).toBe('function');
    expect(log.length).toBe(3);
    expect(log.logger.level).toBe('debug');
    await log.close();
  });

  it('does not mutate the options object', async () => {
    const options = Object.freeze({ destination: new Capture(), ignore: Object.freeze(['/x']) });
    const log = accessLog(options);
    await log.close();
    expect(options.ignore).toEqual(['/x']);
  });
});
