import { parseBytes, parseDuration } from '@perfstack/core';
import { describe, expect, it } from 'vitest';

describe('parseDuration', () => {
  it.each([
    [250, 250],
    [0, 0],
    ['250ms', 250],
    ['30s', 30_000],
    ['1.5s', 1500],
    ['5m', 300_000],
    ['2min', 120_000],
    ['1h', 3_600_000],
    ['1d', 86_400_000],
    [' 10 S ', 10_000],
    ['100', 100],
  ])('%j → %d ms', (input, expected) => {
    expect(parseDuration(input, 'ttl')).toBe(expected);
  });

  it.each([
    ['5 minutes', TypeError],
    ['', TypeError],
    ['-5s', TypeError],
    ['5x', TypeError],
    [null, TypeError],
    [{}, TypeError],
    [Number.NaN, RangeError],
    [Number.POSITIVE_INFINITY, RangeError],
    [-1, RangeError],
  ])('rejects %j with %o naming the option, value and form', (input, ErrorClass) => {
    expect(() => parseDuration(input, 'cache.ttl', { pkg: '@perfstack/cache' })).toThrow(ErrorClass);
    expect(() => parseDuration(input, 'cache.ttl', { pkg: '@perfstack/cache' })).toThrow(
      /@perfstack\/cache: option "cache\.ttl"/,
    );
  });

  it('names the accepted form in the message', () => {
    expect(() => parseDuration('soon', 'timeout')).toThrow(
      `@perfstack/core: option "timeout" must be milliseconds as a number, or a string like '250ms', '30s', '5m', '1h', '1d', got "soon"`,
    );
  });

  it('enforces bounds', () => {
    expect(() => parseDuration('2s', 'timeout', { max: 1000 })).toThrow(RangeError);
    expect(() => parseDuration(0, 'timeout', { min: 1 })).toThrow('option "timeout" must be a duration from 1ms to');
  });
});

describe('parseBytes', () => {
  it.each([
    [1024, 1024],
    ['512b', 512],
    ['100kb', 102_400],
    ['1mb', 1_048_576],
    ['1.5MB', 1_572_864],
    ['2gb', 2_147_483_648],
    ['7', 7],
  ])('%j → %d bytes', (input, expected) => {
    expect(parseBytes(input, 'limit')).toBe(expected);
  });

  it.each([['1 megabyte'], ['mb'], [''], [true], [[]], ['-1kb']])('rejects %j with a TypeError', (input) => {
    expect(() => parseBytes(input, 'limit', { pkg: '@perfstack/size-limit' })).toThrow(TypeError);
    expect(() => parseBytes(input, 'limit', { pkg: '@perfstack/size-limit' })).toThrow(
      /^@perfstack\/size-limit: option "limit" must be bytes as a number, or a string like/,
    );
  });

  it.each([[-1], [Number.NaN]])('rejects %j with a RangeError', (input) => {
    expect(() => parseBytes(input, 'limit')).toThrow(RangeError);
  });
});
