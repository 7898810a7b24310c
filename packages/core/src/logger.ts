/**
 * Serve-time problems are logged, not thrown (ARCHITECTURE.md rule 4), and each stable
 * code is logged once per logger so a misconfiguration does not flood the output.
 */
import type { PerfstackLogger } from './types.js';

/** The default logger: `console.warn`/`console.error` with a `[perfstack]` prefix. */
export const consoleLogger: PerfstackLogger = {
  warn(message, details) {
    console.warn(`[perfstack] ${message}`, details ?? '');
  },
  error(message, details) {
    console.error(`[perfstack] ${message}`, details ?? '');
  },
};

/** A logger that discards everything (tests, benchmarks). */
export const silentLogger: PerfstackLogger = { warn() {}, error() {} };

/** Wraps a logger so that each `code` is reported once. */
export class OnceLogger {
  readonly #logger: PerfstackLogger;
  readonly #seen = new Set<string>();

  constructor(logger: PerfstackLogger = consoleLogger) {
    this.#logger = logger;
  }

  /** Logs `message` under `code` unless that code was already logged. */
  warnOnce(code: string, message: string, details?: Readonly<Record<string, unknown>>): void {
    if (this.#seen.has(code)) return;
    this.#seen.add(code);
    this.#logger.warn(`${code}: ${message}`, details);
  }

  /** Logs an error under `code` unless that code was already logged. */
  errorOnce(code: string, message: string, details?: Readonly<Record<string, unknown>>): void {
    if (this.#seen.has(code)) return;
    this.#seen.add(code);
    this.#logger.error(`${code}: ${message}`, details);
  }

  /** Forgets `code`, so that it is logged again next time (e.g. after a recovery). */
  reset(code: string): void {
    this.#seen.delete(code);
  }
}
