/**
 * Logged headers: copied, never referenced, with secrets censored as they are copied.
 * A header is censored whole when its name is in the configured list (matched without
 * regard to case: Node gives lower-case names) or names a secret by itself
 * (`x-auth-token`, `x-csrf-token`); other values go through the value patterns, and URL
 * headers (`referer`, `location`, `content-location`) through the URL redactor.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { DeepRedactor } from './deep.js';
import type { StringRedactor } from './strings.js';
import type { UrlRedactor } from './url.js';

/** Request headers censored by default. */
export const DEFAULT_REDACTED_HEADERS: readonly string[] = [
  'authorization',
  'cookie',
  'proxy-authorization',
  'x-api-key',
];

/** Response headers censored by default. */
export const DEFAULT_REDACTED_RESPONSE_HEADERS: readonly string[] = ['set-cookie'];

/**
 * Headers logged by default (`headers: 'minimal'`), besides the censored ones, which are
 * always shown as the censor so a reader sees a credential was sent: on requests the
 * client and body description, on responses the body description, the cache outcome and
 * a redirect target.
 */
export const MINIMAL_HEADERS: readonly string[] = [
  'user-agent',
  'referer',
  'content-type',
  'content-length',
  'location',
  'x-cache',
];

/** Which headers a line carries: the lean default set, or every header. */
export type HeaderSelection = 'minimal' | 'all';

/** Headers logged per message; more are counted under `…`. */
const MAX_HEADERS = 100;

const URL_HEADERS: ReadonlySet<string> = new Set(['referer', 'location', 'content-location']);

/** How a header's value is logged. */
enum HeaderKind {
  Plain = 0,
  Censored = 1,
  Url = 2,
  /** Not logged (`headers: 'minimal'`). */
  Skipped = 3,
}

/**
 * Header names whose meaning is fixed by a standard and whose values are never secrets,
 * though a sensitive word appears in the name: the CORS headers (Fetch standard, "CORS
 * protocol"), e.g. `access-control-allow-credentials: true`. A header is censored for what
 * its value is, not for a word in its name.
 */
function isPolicyHeader(lowerName: string): boolean {
  return lowerName.startsWith('access-control-');
}

/** Header names remembered before the memory is cleared (bounded under hostile churn). */
const MAX_REMEMBERED_NAMES = 1024;

/** Copies header objects with secrets censored. Built once per logger. */
export class HeaderRedactor {
  readonly #names: ReadonlySet<string>;
  readonly #deep: DeepRedactor;
  readonly #string: StringRedactor;
  readonly #url: UrlRedactor;
  readonly #censor: string;
  readonly #minimal: boolean;
  readonly #kept: ReadonlySet<string> = new Set(MINIMAL_HEADERS);
  /** Name → kind: one lookup per header in the steady state. */
  readonly #kinds = new Map<string, HeaderKind>();

  constructor(
    names: readonly string[],
    deep: DeepRedactor,
    string: StringRedactor,
    url: UrlRedactor,
    censor: string,
    selection: HeaderSelection = 'all',
  ) {
    this.#minimal = selection === 'minimal';
    this.#names = new Set(names.map((name) => name.toLowerCase()));
    this.#deep = deep;
    this.#string = string;
    this.#url = url;
    this.#censor = censor;
  }

  #kind(name: string): HeaderKind {
    let kind = this.#kinds.get(name);
    if (kind === undefined) {
      const lower = name.toLowerCase();
      kind =
        this.#names.has(lower) || (!isPolicyHeader(lower) && this.#deep.isSensitiveKey(lower))
          ? HeaderKind.Censored
          : this.#minimal && !this.#kept.has(lower)
            ? HeaderKind.Skipped
            : URL_HEADERS.has(lower)
              ? HeaderKind.Url
              : HeaderKind.Plain;
      if (name.length <= 64) {
        if (this.#kinds.size >= MAX_REMEMBERED_NAMES) this.#kinds.clear();
        this.#kinds.set(name, kind);
      }
    }
    return kind;
  }

  /**
   * Returns a redacted copy of `headers`. Names are kept as given: Node gives lower-case
   * names for both `req.headers` and `res.getHeaders()`.
   *
   * @param headers `req.headers` or `res.getHeaders()`
   * @param trusted a header whose value this layer wrote itself (the generated request id), logged as is
   */
  redact(headers: IncomingHttpHeaders | OutgoingHttpHeaders, trusted?: string): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    let count = 0;
    for (const name in headers) {
      const value = headers[name];
      if (value === undefined) continue;
      const kind = this.#kind(name);
      if (kind === HeaderKind.Skipped) continue;
      if (++count > MAX_HEADERS) {
        out['…'] = 'more headers';
        break;
      }
      out[name] = this.#value(name, value, kind, trusted);
    }
    return out;
  }

  /**
   * Returns the logged headers of a response. With `headers: 'minimal'` the names are
   * listed (`getHeaderNames()`) and only the kept ones read, instead of copying every
   * header (`getHeaders()`) — a security middleware alone sets a dozen.
   *
   * @param res the response
   * @param trusted a header whose value this layer wrote itself, logged as is
   */
  redactResponse(res: ServerResponse, trusted?: string): Record<string, unknown> {
    if (!this.#minimal) return this.redact(res.getHeaders(), trusted);
    const out: Record<string, unknown> = {};
    const names = res.getHeaderNames();
    let count = 0;
    for (let i = 0; i < names.length; i++) {
      const name = names[i] as string;
      const kind = this.#kind(name);
      if (kind === HeaderKind.Skipped) continue;
      const value = res.getHeader(name);
      if (value === undefined) continue;
      if (++count > MAX_HEADERS) {
        out['…'] = 'more headers';
        break;
      }
      out[name] = this.#value(name, value, kind, trusted);
    }
    return out;
  }

  #value(name: string, value: unknown, kind: HeaderKind, trusted: string | undefined): unknown {
    if (kind === HeaderKind.Censored) return this.#censor;
    if (typeof value === 'string') {
      return name === trusted ? value : kind === HeaderKind.Url ? this.#url.redact(value) : this.#string(value);
    }
    if (Array.isArray(value)) return value.map((item) => this.#string(String(item)));
    return value;
  }
}
