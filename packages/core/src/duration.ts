/**
 * Duration parsing: `250`, `'250ms'`, `'30s'`, `'5m'`, `'1h'`, `'1d'`, `'1.5s'`.
 *
 * Numbers are milliseconds. Strings are a number followed by one unit; white space
 * between them is allowed, case is not significant. Anything else is an error that
 * names the option, the bad value and the accepted form.
 */
import { describeValue } from './options.js';

const UNIT_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DURATION_RE = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|sec|m|min|h|d)?\s*$/i;

/** The accepted form, as error messages state it. */
export const DURATION_FORM = "milliseconds as a number, or a string like '250ms', '30s', '5m', '1h', '1d'";

/** Options for {@link parseDuration}. */
export interface ParseDurationOptions {
  /** Package name for the error message. @default '@perfstack/core' */
  readonly pkg?: string;
  /** Smallest accepted result in ms. @default 0 */
  readonly min?: number;
  /** Largest accepted result in ms. @default 2^31-1 (the longest `setTimeout`) */
  readonly max?: number;
}

/**
 * Parses a duration into whole milliseconds.
 *
 * @param value a number of ms or a string with a unit
 * @param option the option name, for the error message
 * @param options package name and bounds
 * @returns milliseconds (rounded to an integer)
 * @throws {TypeError} when the value is neither a number nor a duration string
 * @throws {RangeError} when it is negative, not finite, or outside `[min, max]`
 * @example parseDuration('5m', 'ttl') // 300000
 */
export function parseDuration(value: unknown, option: string, options: ParseDurationOptions = {}): number {
  const pkg = options.pkg ?? '@perfstack/core';
  const min = options.min ?? 0;
  const max = options.max ?? 2_147_483_647;
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      throw new RangeError(`${pkg}: option "${option}" must be ${DURATION_FORM}, got ${describeValue(value)}`);
    }
    ms = value;
  } else if (typeof value === 'string') {
    const match = DURATION_RE.exec(value);
    if (!match) {
      throw new TypeError(`${pkg}: option "${option}" must be ${DURATION_FORM}, got ${describeValue(value)}`);
    }
    const unit = (match[2] ?? 'ms').toLowerCase();
    ms = Number(match[1]) * (UNIT_MS[unit] as number);
  } else {
    throw new TypeError(`${pkg}: option "${option}" must be ${DURATION_FORM}, got ${describeValue(value)}`);
  }
  const rounded = Math.round(ms) + 0; // + 0 turns -0 (from -0.4) into 0
  if (rounded < min || rounded > max) {
    throw new RangeError(
      `${pkg}: option "${option}" must be a duration from ${min}ms to ${max}ms, got ${describeValue(value)}`,
    );
  }
  return rounded;
}
