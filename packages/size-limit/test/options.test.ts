/**
 * Options are checked at construction: a table of bad values, each with the exact
 * error class and a message naming the package, the option, the value and the form.
 */
import { sizeLimit } from '@perfstack/size-limit';
import { describe, expect, it } from 'vitest';

const SIZE = "bytes as a number, or a string like '512b', '100kb', '1mb', '2gb'";
const DURATION = "milliseconds as a number, or a string like '250ms', '30s', '5m', '1h', '1d'";

const BAD: ReadonlyArray<readonly [string, unknown, ErrorConstructor, string]> = [
  ['limit', 'big', TypeError, `@perfstack/size-limit: option "limit" must be ${SIZE}, got "big"`],
  [
    'limit',
    -1,
    RangeError,
    '@perfstack/size-limit: option "limit" must be a size from 0 to 9007199254740991 bytes, got -1',
  ],
  ['limit', Number.NaN, RangeError, `@perfstack/size-limit: option "limit" must be ${SIZE}, got NaN`],
  ['limit', null, TypeError, `@perfstack/size-limit: option "limit" must be ${SIZE}, got null`],
  [
    'limits',
    ['application/json'],
    TypeError,
    `@perfstack/size-limit: option "limits" must be an object of media type to size, like { 'application/json': '100kb' }, got array(1)`,
  ],
  [
    'limits',
    { json: '1kb' },
    TypeError,
    `@perfstack/size-limit: option "limits["json"]" must be a media type like 'application/json' or 'multipart/*', got "json"`,
  ],
  [
    'limits',
    { 'application/json': 'lots' },
    TypeError,
    `@perfstack/size-limit: option "limits["application/json"]" must be ${SIZE}, got "lots"`,
  ],
  [
    'maxUrlLength',
    0,
    RangeError,
    '@perfstack/size-limit: option "maxUrlLength" must be an integer from 1 to 1048576, got 0',
  ],
  [
    'maxUrlLength',
    '8k',
    TypeError,
    '@perfstack/size-limit: option "maxUrlLength" must be an integer from 1 to 1048576, got "8k"',
  ],
  [
    'maxHeaderCount',
    1.5,
    TypeError,
    '@perfstack/size-limit: option "maxHeaderCount" must be an integer from 1 to 100000, got 1.5',
  ],
  [
    'maxHeaderBytes',
    0,
    RangeError,
    '@perfstack/size-limit: option "maxHeaderBytes" must be a size from 1 to 16777216 bytes, got 0',
  ],
  [
    'bodyTimeout',
    '5 minutes',
    TypeError,
    `@perfstack/size-limit: option "bodyTimeout" must be ${DURATION}, got "5 minutes"`,
  ],
  [
    'bodyTimeout',
    -5,
    RangeError,
    '@perfstack/size-limit: option "bodyTimeout" must be a duration from 0ms to 2147483647ms, got -5',
  ],
  [
    'lingerTimeout',
    '2m',
    RangeError,
    '@perfstack/size-limit: option "lingerTimeout" must be a duration from 0ms to 60000ms, got "2m"',
  ],
  [
    'requireContentLength',
    'yes',
    TypeError,
    '@perfstack/size-limit: option "requireContentLength" must be a boolean, got "yes"',
  ],
  ['decompress', 1, TypeError, '@perfstack/size-limit: option "decompress" must be a boolean, got 1'],
  ['early', 'no', TypeError, '@perfstack/size-limit: option "early" must be a boolean, got "no"'],
  ['skip', '/health', TypeError, '@perfstack/size-limit: option "skip" must be a function, got "/health"'],
  ['onReject', {}, TypeError, '@perfstack/size-limit: option "onReject" must be a function, got object'],
  ['registry', {}, TypeError, '@perfstack/size-limit: option "registry" must be a prom-client Registry, got object'],
  [
    'logger',
    { warn() {} },
    TypeError,
    '@perfstack/size-limit: option "logger" must be an object with warn(message, details) and error(message, details), got object',
  ],
];

describe('sizeLimit() options', () => {
  for (const [option, value, type, message] of BAD) {
    it(`rejects ${option}: ${String(typeof value === 'object' ? JSON.stringify(value) : value)}`, () => {
      const call = () => sizeLimit({ [option]: value } as never);
      expect(call).toThrow(type);
      expect(call).toThrow(message);
    });
  }

  it('rejects unknown keys, naming the known ones', () => {
    expect(() => sizeLimit({ maxBodySize: '1mb' } as never)).toThrow(
      new TypeError(
        '@perfstack/size-limit: unknown option "maxBodySize" for sizeLimit(); known options: limit, limits, maxUrlLength, maxHeaderCount, maxHeaderBytes, bodyTimeout, requireContentLength, decompress, lingerTimeout, skip, onReject, early, registry, redis, logger',
      ),
    );
  });

  it('rejects a non-object and app.use(sizeLimit) without the call', () => {
    expect(() => sizeLimit('1mb' as never)).toThrow(
      new TypeError('@perfstack/size-limit: sizeLimit(options) takes an options object, got "1mb"'),
    );
    expect(() => sizeLimit({ method: 'GET', headers: {}, url: '/' } as never)).toThrow(
      /call it first: app\.use\(sizeLimit\(\)\) not app\.use\(sizeLimit\)/,
    );
  });

  it('accepts every option, and the SharedContext members', () => {
    const limiter = sizeLimit({
      limit: 0,
      limits: { 'application/json': 100, 'multipart/*': '20mb' },
      maxUrlLength: 1,
      maxHeaderCount: 1,
      maxHeaderBytes: '1kb',
      bodyTimeout: 0,
      requireContentLength: true,
      decompress: true,
      lingerTimeout: '1s',
      skip: () => false,
      onReject: () => {},
      early: false,
      logger: { warn() {}, error() {} },
      redis: undefined,
    });
    expect(typeof limiter).toBe('function');
    expect(limiter.stats()).toEqual({
      rejected: {
        PAYLOAD_TOO_LARGE: 0,
        URI_TOO_LONG: 0,
        HEADERS_TOO_LARGE: 0,
        BODY_TIMEOUT: 0,
        LENGTH_REQUIRED: 0,
        BAD_REQUEST: 0,
      },
    });
  });
});

describe('sizeLimit.route() options', () => {
  it('rejects bad values and keys that only the stack limiter takes', () => {
    expect(() => sizeLimit.route({ limit: 'huge' })).toThrow(
      new TypeError(`@perfstack/size-limit: option "limit" must be ${SIZE}, got "huge"`),
    );
    expect(() => sizeLimit.route({ bodyTimeout: false } as never)).toThrow(TypeError);
    expect(() => sizeLimit.route({ maxUrlLength: 10 } as never)).toThrow(
      new TypeError(
        '@perfstack/size-limit: unknown option "maxUrlLength" for sizeLimit.route(); known options: limit, limits, bodyTimeout, registry, logger',
      ),
    );
  });
});
