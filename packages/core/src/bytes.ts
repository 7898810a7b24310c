/**
 * Byte-size parsing: `1024`, `'100kb'`, `'1mb'`, `'1.5 MB'`, `'2gb'`, `'512b'`.
 *
 * Units are binary (1kb = 1024 bytes), as in the `bytes` package that Express's
 * body parsers use, so `'100kb'` means the same here as in `express.json({ limit })`.
 */
import { describeValue } from './options.js';

const UNIT_BYTES: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1024,
  mb: 1024 ** 2,
  gb: 1024 ** 3,
  tb: 1024 ** 4,
};

const BYTES_RE = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(b|kb|mb|gb|tb)?\s*$/i;

/** The accepted form, as error messages state it. */
export const BYTES_FORM = "bytes as a number, or a string like '512b', '100kb', '1mb', '2gb'";

/** Options for {@link parseBytes}. */
export interface ParseBytesOptions {
  /** Package name for the error message. @default '@perfstack/core' */
  readonly pkg?: string;
  /** Smallest accepted result. @default 0 */
  readonly min?: number;
  /** Largest accepted result. @default Number.MAX_SAFE_INTEGER */
  readonly max?: number;
}

/**
 * Parses a byte size into a whole number of bytes.
 *
 * @param value bytes as a number, or a string with a unit
 * @param option the option name, for the error message
 * @returns bytes (floored to an integer)
 * @throws {TypeError} when the value is neither a number nor a size string
 * @throws {RangeError} when it is negative, not finite, or outside `[min, max]`
 * @example parseBytes('100kb', 'limit') // 102400
 */
export function parseBytes(value: unknown, option: string, options: ParseBytesOptions = {}): number {
  const pkg = options.pkg ?? '@perfstack/core';
  const min = options.min ?? 0;
  const max = options.max ?? Number.MAX_SAFE_INTEGER;
  let bytes: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) {
      throw new RangeError(`${pkg}: option "${option}" must be ${BYTES_FORM}, got ${describeValue(value)}`);
    }
    bytes = value;
  } else if (typeof value === 'string') {
    const match = BYTES_RE.exec(value);
    if (!match) throw new TypeError(`${pkg}: option "${option}" must be ${BYTES_FORM}, got ${describeValue(value)}`);
    bytes = Number(match[1]) * (UNIT_BYTES[(match[2] ?? 'b').toLowerCase()] as number);
  } else {
    throw new TypeError(`${pkg}: option "${option}" must be ${BYTES_FORM}, got ${describeValue(value)}`);
  }
  const floored = Math.floor(bytes);
  if (floored < min || floored > max) {
    throw new RangeError(
      `${pkg}: option "${option}" must be a size from ${min} to ${max} bytes, got ${describeValue(value)}`,
    );
  }
  return floored;
}
