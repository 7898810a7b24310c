/**
 * The hand-written redactors, unit by unit: value patterns (bearer, JWT, key=value,
 * prefixed keys, Luhn card numbers), sensitive keys, truncation without a partial secret,
 * URL query values, and the bounds of the deep redactor.
 */
import { describe, expect, it } from 'vitest';
import { DeepRedactor } from '../src/redact/deep.js';
import { DEFAULT_SENSITIVE_KEYS, normalizeKey, SensitiveKeys } from '../src/redact/keys.js';
import { hasCardLengthDigits, passesLuhn } from '../src/redact/luhn.js';
import { createStringRedactor, truncate } from '../src/redact/strings.js';
import { UrlRedactor } from '../src/redact/url.js';

const C = '[REDACTED]';
const keys = new SensitiveKeys([...DEFAULT_SENSITIVE_KEYS, normalizeKey('customField')]);
const redactString = createStringRedactor({
  censor: C,
  keyFragments: keys.fragments,
  shortKeys: keys.shortEntries,
  maxLength: 4096,
});
const deep = new DeepRedactor(keys, redactString, C, { maxDepth: 4, maxKeys: 5, maxItems: 3, maxNodes: 50 });
const url = new UrlRedactor(redactString, deep, C, 4096);

describe('Luhn', () => {
  it.each([
    ['4111111111111111', true],
    ['4111 1111 1111 1111', true],
    ['5500-0000-0000-0004', true],
    ['378282246310005', true],
    ['4111111111111112', false],
    ['411111111111', false],
    ['12345678901234567890', false],
  ])('%s passes: %s', (value, expected) => {
    expect(passesLuhn(value)).toBe(expected);
  });

  it('finds card-length digit runs only', () => {
    expect(hasCardLengthDigits('4111 1111 1111 1111')).toBe(true);
    expect(hasCardLengthDigits('9d18eaa1-3294-482d-9f5d-b928429484c8')).toBe(false);
    expect(hasCardLengthDigits('Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0')).toBe(false);
    expect(hasCardLengthDigits('4111  1111 1111 1111')).toBe(false);
  });
});

describe('sensitive keys', () => {
  it.each([
    'password',
    'newPassword',
    'PASSWORD_CONFIRM',
    'api_key',
    'apiKey',
    'X-API-KEY',
    'x-auth-token',
    'refresh_token',
    'client_secret',
    'creditCard',
    'card_number',
    'cvv',
    'PIN',
    'set-cookie',
    'sessionId',
    'X-Amz-Signature',
    'custom_field',
  ])('%s is sensitive', (key) => {
    expect(keys.matches(key)).toBe(true);
  });

  it.each(['name', 'spinner', 'className', 'pinned', 'visible', 'id', 'author', 'keyboard'])('%s is not', (key) => {
    expect(keys.matches(key)).toBe(false);
  });
});

describe('value patterns', () => {
  it.each([
    ['Bearer abcdefghijklmnop', `Bearer ${C}`],
    ['got bearer abc.def-ghi_jkl~mno+/= from the client', `got bearer ${C} from the client`],
    ['Basic dXNlcjpwYXNzd29yZA==', `Basic ${C}`],
    ['jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmn here', `jwt ${C} here`],
    ['password=hunter2&next=/', `password=${C}&next=/`],
    ['{"apiKey":"k 1 2 3","ok":1}', `{"apiKey":"${C}","ok":1}`],
    ["token: 'abc def'", `token: '${C}'`],
    ['Authorization: Bearer abcdefghij', `Authorization: ${C}`],
    ['pin=1234 spin=5', `pin=${C} spin=5`],
    ['key sk_live_51Habcdefghijkl end', `key ${C} end`],
    ['AKIAABCDEFGHIJKLMNOP', C],
    ['ghp_abcdefghijklmnopqrstuvwxyz0123', C],
    ['pay 4111 1111 1111 1111 now', `pay ${C} now`],
    ['order 4111111111111112 total', 'order 4111111111111112 total'],
    ['plain text without secrets', 'plain text without secrets'],
    ['short', 'short'],
  ])('%s → %s', (input, expected) => {
    expect(redactString(input)).toBe(expected);
  });

  it('returns the same string when clean, twice (the memo)', () => {
    const value = 'application/json; charset=utf-8';
    expect(redactString(value)).toBe(value);
    expect(redactString(value)).toBe(value);
  });

  it('uses a censor with $ patterns literally', () => {
    const dollar = createStringRedactor({ censor: '$&$1', keyFragments: ['token'], shortKeys: [], maxLength: 100 });
    expect(dollar('token=abcdef Bearer abcdefgh')).toBe('token=$&$1 Bearer $&$1');
  });
});

describe('truncation', () => {
  it('marks the cut and leaves no partial token', () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnopqrstuvwxyz';
    const value = `${'word '.repeat(10)}${jwt}`;
    const cut = truncate(value, 60);
    expect(cut).toBe(`${'word '.repeat(10)}…[TRUNCATED ${jwt.length} chars]`);
  });

  it('is applied before the patterns, so a hostile string is bounded', () => {
    const hostile = `${'token='.repeat(20_000)}${'eyJ'.repeat(20_000)}${'4'.repeat(20_000)}`;
    const out = redactString(hostile);
    expect(out.length).toBeLessThan(4200);
    expect(out).toMatch(/…\[TRUNCATED \d+ chars\]$/);
  });
});

describe('URLs', () => {
  it.each([
    ['/a', '/a'],
    ['/a?', '/a?'],
    ['/a?token=abc&page=2', `/a?token=${C}&page=2`],
    ['/a?Api-Key=abc&flag', `/a?Api-Key=${C}&flag`],
    ['/a?q=Bearer%20abcdefghijk', `/a?q=${C}`],
    ['/a?q=4111+1111+1111+1111', `/a?q=${C}`],
    ['/a?q=%E0%A4%A', '/a?q=%E0%A4%A'],
    ['/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmn?x=1', `/reset/${C}?x=1`],
    ['/a?pass%77ord=x', `/a?pass%77ord=${C}`],
  ])('%s → %s', (input, expected) => {
    expect(url.redact(input)).toBe(expected);
  });
});

describe('deep redactor bounds', () => {
  it('censors sensitive keys at any depth within the limit and marks what is cut', () => {
    const value = { a: { b: { c: { d: { e: 1 } } } }, password: { nested: 'x' }, list: [1, 2, 3, 4, 5] };
    expect(deep.value(value)).toEqual({
      a: { b: { c: { d: '[Object]' } } },
      password: C,
      list: [1, 2, 3, '… 2 more items'],
    });
  });

  it('counts the keys it leaves out', () => {
    expect(deep.value({ a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7 })).toEqual({
      a: 1,
      b: 2,
      c: 3,
      d: 4,
      e: 5,
      '…': '2 more keys',
    });
  });

  it('stops at the node budget', () => {
    const wide = Array.from({ length: 3 }, () => Array.from({ length: 3 }, () => [[{}], [{}], [{}]]));
    const json = JSON.stringify(deep.value(wide));
    expect(json).toContain('[Truncated]');
  });

  it('survives cycles, throwing getters, __proto__ keys, BigInt, Buffers and Maps', () => {
    const cyclic: Record<string, unknown> = { name: 'x' };
    cyclic.self = cyclic;
    const getter = Object.defineProperty({}, 'boom', {
      enumerable: true,
      get() {
        throw new Error('no');
      },
    });
    const proto = JSON.parse('{"__proto__":{"password":"p"}}') as object;
    const out = deep.value({ cyclic, getter, proto, big: 10n, buf: Buffer.from('secret') });
    expect(JSON.parse(JSON.stringify(out))).toEqual({
      cyclic: { name: 'x', self: { name: 'x', self: { name: 'x', self: '[Object]' } } },
      getter: '[Unserializable]',
      proto: { ['__proto__']: { password: C } },
      big: '10',
      buf: '[Buffer 6 bytes]',
    });
    expect(deep.value({ map: new Map([[1, 2]]), set: new Set([1]), date: new Date(0) })).toEqual({
      map: '[Map 1]',
      set: '[Set 1]',
      date: new Date(0),
    });
    expect(Object.getPrototypeOf((out as { proto: object }).proto)).toBe(Object.prototype);
  });

  it('redacts errors through their serialized form', () => {
    const error = Object.assign(new Error('bad token=abc123456'), { apiKey: 'k' });
    const out = deep.value(error) as { message: string; apiKey: string; type: string };
    expect(out.type).toBe('Error');
    expect(out.message).toBe(`bad token=${C}`);
    expect(out.apiKey).toBe(C);
  });

  it('returns the fields object itself when nothing changes', () => {
    const fields = { a: 1, b: 'plain text value' };
    expect(deep.fields(fields, new Set())).toBe(fields);
  });
});
