/**
 * pino's `hooks.logMethod`: the arguments of every log call — the access line's and an
 * app's `req.log.info(...)` — pass through here before pino formats the message. Strings
 * (the message, printf-style arguments) go through the value patterns; objects given as
 * printf arguments through the deep redactor. When an `Error` is logged without a message,
 * pino would use `err.message` as the message unredacted, so a redacted copy is passed
 * as the message instead.
 */
import type { DeepRedactor } from './redact/deep.js';
import type { StringRedactor } from './redact/strings.js';

/** Rewrites the arguments of one log call in place. */
export function redactLogArguments(args: unknown[], string: StringRedactor, deep: DeepRedactor): void {
  const first = args[0];
  if (typeof first === 'object' && first !== null && typeof args[1] !== 'string') {
    const error = first instanceof Error ? first : (first as { err?: unknown }).err;
    if (error instanceof Error && (first instanceof Error || (first as { msg?: unknown }).msg === undefined)) {
      args.splice(1, 0, string(error.message));
    }
  }
  for (let i = typeof first === 'string' ? 0 : 1; i < args.length; i++) {
    const arg = args[i];
    if (typeof arg === 'string') args[i] = string(arg);
    else if (typeof arg === 'object' && arg !== null) args[i] = deep.value(arg);
  }
}
