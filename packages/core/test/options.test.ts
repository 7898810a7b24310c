import http from 'node:http';
import { checkOptionsObject, readInteger, readString } from '@perfstack/core';
import { describe, expect, it } from 'vitest';

describe('checkOptionsObject', () => {
  it('accepts undefined and known keys, and never mutates the input', () => {
    expect(checkOptionsObject('@perfstack/x', 'x', undefined, ['a'])).toEqual({});
    const input = Object.freeze({ a: 1 });
    expect(checkOptionsObject('@perfstack/x', 'x', input, ['a'])).toBe(input);
  });

  it('rejects unknown keys by name', () => {
    expect(() => checkOptionsObject('@perfstack/x', 'thing', { a: 1, b: 2 } as object, ['a'])).toThrow(
      '@perfstack/x: unknown option "b" for thing(); known options: a',
    );
  });

  it('rejects non-objects', () => {
    for (const bad of [null, 5, 'str', [1]]) {
      expect(() => checkOptionsObject('@perfstack/x', 'thing', bad as never, ['a'])).toThrow(TypeError);
    }
  });

  it('catches app.use(factory) without ()', () => {
    const req = new http.IncomingMessage(null as never);
    req.method = 'GET';
    expect(() => checkOptionsObject('@perfstack/x', 'thing', req as never, ['a'])).toThrow(
      '@perfstack/x: thing was passed a request object; call it first: app.use(thing()) not app.use(thing)',
    );
  });
});

describe('readers', () => {
  it('readInteger bounds and types', () => {
    expect(readInteger('p', 'n', undefined, 3)).toBe(3);
    expect(readInteger('p', 'n', 5, 3, 1, 10)).toBe(5);
    expect(() => readInteger('p', 'n', 1.5, 3)).toThrow('p: option "n" must be an integer from 0 to');
    expect(() => readInteger('p', 'n', 11, 3, 1, 10)).toThrow(RangeError);
  });

  it('readString choices', () => {
    expect(readString('p', 'mode', 'a', 'b', ['a', 'b'])).toBe('a');
    expect(() => readString('p', 'mode', 'c', 'b', ['a', 'b'])).toThrow(
      'p: option "mode" must be one of "a", "b", got "c"',
    );
  });
});
