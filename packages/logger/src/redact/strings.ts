/**
 * Value patterns: secrets recognised by their shape wherever a string is logged — a
 * header value, the URL, a message, an error's message and stack, a field of a body.
 *
 * - credentials after an auth scheme (`Bearer …`, `Basic …`, `Digest …`);
 * - JSON Web Tokens (RFC 7519 compact form: `eyJ…` header, at least two dots);
 * - `key=value` / `key: value` / `"key":"value"` where the key names a secret;
 * - well-known prefixed API keys (Stripe `sk_live_`, GitHub `ghp_`, Slack `xox?-`, AWS `AKIA`, Google `AIza`);
 * - card numbers: 13 to 19 digits (spaces or dashes allowed) that pass the Luhn check.
 *
 * Cost is the point of this file (ARCHITECTURE.md rule 6): every pattern is compiled once,
 * strings shorter than 8 characters are returned as they are, each pattern runs only
 * when a cheap test (`indexOf`, a digit count) says it could match, no pattern can
 * backtrack more than a bounded amount, and strings longer than `maxLength` are cut
 * first — so a hostile 64 KB header costs the same as a 4 KB one.
 */
import { hasCardLengthDigits, passesLuhn } from './luhn.js';

/** Strings shorter than this hold no secret worth a pattern (and are most strings logged). */
const MIN_SCAN_LENGTH = 8;

/** Clean strings up to this length are remembered (header values and messages repeat). */
const MAX_REMEMBERED_LENGTH = 512;

/** Clean strings remembered before the memory is cleared (bounded under hostile churn). */
const MAX_REMEMBERED = 4096;

/** Characters a token, key or encoded secret is made of (base64, base64url, percent-encoding). */
function isTokenChar(code: number): boolean {
  return (
    (code >= 48 && code <= 57) || // 0-9
    (code >= 65 && code <= 90) || // A-Z
    (code >= 97 && code <= 122) || // a-z
    code === 45 || // -
    code === 95 || // _
    code === 46 || // .
    code === 126 || // ~
    code === 43 || // +
    code === 47 || // /
    code === 61 || // =
    code === 37 // %
  );
}

/** Characters of a JWT segment: base64url and the dot between segments. */
function isJwtChar(code: number): boolean {
  return (
    (code >= 48 && code <= 57) ||
    (code >= 65 && code <= 90) ||
    (code >= 97 && code <= 122) ||
    code === 45 ||
    code === 95 ||
    code === 46
  );
}

/** Escapes a string for use inside a `RegExp`. */
function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `apikey` → `a[-_.]?p[-_.]?i[-_.]?k[-_.]?e[-_.]?y`: matches `api_key`, `api-key`, `apiKey`. */
function separatorTolerant(entry: string): string {
  return [...entry].map(escapeRegExp).join('[-_.]?');
}

/**
 * Cuts `value` to at most `maxLength` characters and says how much was cut. The cut backs
 * off over a run of token characters, so no partial secret is left at the end (a partial
 * JWT or card number would pass none of the patterns).
 */
export function truncate(value: string, maxLength: number): string {
  let end = maxLength;
  while (end > 0 && isTokenChar(value.charCodeAt(end - 1)) && isTokenChar(value.charCodeAt(end))) end--;
  return `${value.slice(0, end)}…[TRUNCATED ${value.length - end} chars]`;
}

/** What {@link createStringRedactor} needs. */
export interface StringRedactorConfig {
  /** What a secret is replaced with. */
  readonly censor: string;
  /** Normalized sensitive keys of five or more characters: matched inside longer keys. */
  readonly keyFragments: readonly string[];
  /** Normalized sensitive keys shorter than five characters: matched as whole words. */
  readonly shortKeys: readonly string[];
  /** Longer strings are cut first. */
  readonly maxLength: number;
}

/** Replaces secrets in one string; returns the same string when there are none. */
export type StringRedactor = (value: string) => string;

/**
 * Compiles the value patterns once.
 *
 * @param config censor, sensitive keys and the string length limit
 * @returns a function that redacts one string
 */
export function createStringRedactor(config: StringRedactorConfig): StringRedactor {
  const { censor, maxLength } = config;
  const keyAlternatives: string[] = [];
  if (config.keyFragments.length > 0) {
    keyAlternatives.push(`(?:${config.keyFragments.map(separatorTolerant).join('|')})[\\w.-]{0,32}`);
  }
  if (config.shortKeys.length > 0) {
    keyAlternatives.push(`\\b(?:${config.shortKeys.map(separatorTolerant).join('|')})\\b`);
  }
  // `password=x`, `token: x`, `"apiKey":"x"`, `Authorization: Bearer x`. The key stays, so a
  // reader sees what was there; the value becomes the censor. A quoted value runs to its
  // closing quote (spaces included); a bare one to the next space or delimiter.
  const keyValue =
    keyAlternatives.length === 0
      ? undefined
      : new RegExp(
          `((?:${keyAlternatives.join('|')})["']?\\s{0,3}[:=]\\s{0,3})(?:(["'])[^"'\\n]{0,512}|(?:(?:bearer|basic|digest)\\s+)?[^\\s"'&,;]{1,512})`,
          'gi',
        );
  const authScheme = /\b(bearer|basic|digest|negotiate)(\s+)[A-Za-z0-9\-._~+/]{6,}=*/gi;
  const prefixedKey =
    /\b(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35})/g;
  const cardCandidate = /(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)/g;

  const replaceKeyValue = (_match: string, prefix: string, quote: string | undefined) =>
    prefix + (quote ?? '') + censor;
  const replaceScheme = (_match: string, scheme: string, space: string) => scheme + space + censor;
  const replaceCard = (match: string) => (passesLuhn(match) ? censor : match);
  const replaceAll = () => censor;

  /** Replaces every JWT: a linear scan from each `eyJ` over base64url runs with two or more dots. */
  const redactJwts = (value: string): string => {
    let start = value.indexOf('eyJ');
    if (start === -1) return value;
    let out = '';
    let last = 0;
    while (start !== -1) {
      let end = start;
      let dots = 0;
      while (end < value.length) {
        const code = value.charCodeAt(end);
        if (!isJwtChar(code)) break;
        if (code === 46) dots++;
        end++;
      }
      if (dots >= 2 && end - start >= 16) {
        out += value.slice(last, start) + censor;
        last = end;
      }
      start = value.indexOf('eyJ', end === start ? end + 1 : end);
    }
    return last === 0 ? value : out + value.slice(last);
  };

  // Strings known to hold no secret. Only clean strings are remembered, so no secret is
  // kept alive by the cache; a hit costs one hash lookup instead of the patterns.
  const clean = new Set<string>();

  return function redactString(input: string): string {
    if (input.length < MIN_SCAN_LENGTH) return input;
    const rememberable = input.length <= MAX_REMEMBERED_LENGTH;
    if (rememberable && clean.has(input)) return input;
    let value = input.length > maxLength ? truncate(input, maxLength) : input;
    value = redactJwts(value);
    if (keyValue !== undefined && (value.includes('=') || value.includes(':'))) {
      value = value.replace(keyValue, replaceKeyValue);
    }
    // A scheme and its credentials are separated by white space.
    if (value.includes(' ') || value.includes('\t')) value = value.replace(authScheme, replaceScheme);
    if (value.includes('_') || value.includes('xox') || value.includes('AKIA') || value.includes('AIza')) {
      value = value.replace(prefixedKey, replaceAll);
    }
    if (value.length >= 13 && hasCardLengthDigits(value)) value = value.replace(cardCandidate, replaceCard);
    if (rememberable && value === input) {
      if (clean.size >= MAX_REMEMBERED) clean.clear();
      clean.add(input);
    }
    return value;
  };
}
