/**
 * Construction-time option checks shared by every perfstack package.
 *
 * Every factory validates its options once, when it is called, and throws a
 * `TypeError` or `RangeError` that names the package, the option, the bad value
 * and the accepted form (ARCHITECTURE.md rule 3). Nothing here runs per request.
 */

/** Renders a value for an error message without dumping large objects. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (value === null) return 'null';
  if (Array.isArray(value)) return `array(${value.length})`;
  if (typeof value === 'object') return 'object';
  return String(value);
}

/** Builds the message every option error uses: `@perfstack/x: option "y" must be <accepted>, got <value>`. */
export function optionMessage(pkg: string, option: string, value: unknown, accepted: string): string {
  return `${pkg}: option "${option}" must be ${accepted}, got ${describeValue(value)}`;
}

/** A `TypeError` for an option of the wrong type. */
export function optionTypeError(pkg: string, option: string, value: unknown, accepted: string): TypeError {
  return new TypeError(optionMessage(pkg, option, value, accepted));
}

/** A `RangeError` for an option of the right type but out of range. */
export function optionRangeError(pkg: string, option: string, value: unknown, accepted: string): RangeError {
  return new RangeError(optionMessage(pkg, option, value, accepted));
}

/** True when `value` looks like an `IncomingMessage` (someone wrote `app.use(factory)` without calling it). */
function looksLikeRequest(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    'method' in value &&
    'headers' in value &&
    ('socket' in value || 'url' in value)
  );
}

/**
 * Checks the options object a factory received: `undefined` is fine, anything but a
 * plain object is a `TypeError`, keys outside `known` are a `TypeError` naming them, and a
 * request object (the `app.use(factory)` mistake) gets a message saying to call the factory.
 *
 * @param pkg the package name used in messages, e.g. `@perfstack/cache`
 * @param factory the factory's name, e.g. `responseCache`
 * @param options what the caller passed
 * @param known the accepted option keys
 * @returns the options as a record (an empty one for `undefined`)
 * @throws {TypeError} on a non-object, an unknown key, or a request object
 */
export function checkOptionsObject<T extends object>(
  pkg: string,
  factory: string,
  options: T | undefined,
  known: readonly string[],
): Partial<T> {
  if (options === undefined) return {};
  if (looksLikeRequest(options)) {
    throw new TypeError(
      `${pkg}: ${factory} was passed a request object; call it first: app.use(${factory}()) not app.use(${factory})`,
    );
  }
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`${pkg}: ${factory}(options) takes an options object, got ${describeValue(options)}`);
  }
  const allowed = new Set(known);
  for (const key of Object.keys(options)) {
    if (!allowed.has(key)) {
      throw new TypeError(`${pkg}: unknown option "${key}" for ${factory}(); known options: ${known.join(', ')}`);
    }
  }
  return options;
}

/** Reads an optional boolean option. */
export function readBoolean(pkg: string, option: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw optionTypeError(pkg, option, value, 'a boolean');
  return value;
}

/** Reads an optional integer option within `[min, max]`. */
export function readInteger(
  pkg: string,
  option: string,
  value: unknown,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw optionTypeError(pkg, option, value, `an integer from ${min} to ${max}`);
  }
  if (value < min || value > max) throw optionRangeError(pkg, option, value, `an integer from ${min} to ${max}`);
  return value;
}

/** Reads an optional finite number option within `[min, max]`. */
export function readNumber(
  pkg: string,
  option: string,
  value: unknown,
  fallback: number,
  min = 0,
  max = Number.MAX_VALUE,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw optionTypeError(pkg, option, value, `a number from ${min} to ${max}`);
  }
  if (value < min || value > max) throw optionRangeError(pkg, option, value, `a number from ${min} to ${max}`);
  return value;
}

/** Reads an optional function option. */
export function readFunction<F extends (...args: never[]) => unknown>(
  pkg: string,
  option: string,
  value: unknown,
  fallback: F,
): F;
export function readFunction<F extends (...args: never[]) => unknown>(
  pkg: string,
  option: string,
  value: unknown,
  fallback?: undefined,
): F | undefined;
export function readFunction<F extends (...args: never[]) => unknown>(
  pkg: string,
  option: string,
  value: unknown,
  fallback?: F,
): F | undefined {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') throw optionTypeError(pkg, option, value, 'a function');
  return value as F;
}

/** Reads an optional string option, optionally restricted to `choices`. */
export function readString<S extends string = string>(
  pkg: string,
  option: string,
  value: unknown,
  fallback: S,
  choices?: readonly S[],
): S {
  if (value === undefined) return fallback;
  if (typeof value !== 'string') {
    throw optionTypeError(
      pkg,
      option,
      value,
      choices ? `one of ${choices.map((c) => `"${c}"`).join(', ')}` : 'a string',
    );
  }
  if (choices && !choices.includes(value as S)) {
    throw optionRangeError(pkg, option, value, `one of ${choices.map((c) => `"${c}"`).join(', ')}`);
  }
  return value as S;
}

/** Reads an optional array of strings. */
export function readStringArray(pkg: string, option: string, value: unknown, fallback: readonly string[]): string[] {
  if (value === undefined) return [...fallback];
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    throw optionTypeError(pkg, option, value, 'an array of strings');
  }
  return [...value];
}
