/**
 * Connect-style middleware types. Every perfstack layer is written once against
 * `node:http` types (ARCHITECTURE.md rule 7); Express takes these as they are, and the
 * adapters in `./adapters` run them on Koa and plain `node:http`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Calls the next middleware; an argument is an error. */
export type NextFunction = (error?: unknown) => void;

/** A Connect/Express-style middleware on `node:http` types. */
export type Middleware = (req: IncomingMessage, res: ServerResponse, next: NextFunction) => void;

/** A middleware that owns resources (timers, connections) and must be closed on shutdown. */
export interface ClosableMiddleware extends Middleware {
  /** Releases timers and connections. Safe to call more than once. */
  close(): Promise<void>;
}

/** A listener that can be removed. */
export interface Disposable {
  dispose(): void;
}

/** The serve-time logger every layer reports problems through (ARCHITECTURE.md rule 4). */
export interface PerfstackLogger {
  warn(message: string, details?: Readonly<Record<string, unknown>>): void;
  error(message: string, details?: Readonly<Record<string, unknown>>): void;
}
