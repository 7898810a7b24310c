/**
 * `GET /api/stream`: Server-Sent Events (HTML Living Standard §9.2). One timer serves
 * every open stream: a snapshot is built and serialised once per tick, then written to
 * each client. A comment line is sent as a heartbeat so proxies keep idle connections
 * open, a client that stops reading is dropped once its buffer passes a bound, and the
 * number of concurrent streams is capped.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OnceLogger } from '@perfstack/core';
import { setCommonHeaders } from './respond.js';

/** Most bytes queued for one slow client before it is dropped. */
const MAX_BUFFERED = 512 * 1024;

/** Settings for {@link StreamHub}. */
export interface StreamSettings {
  /** ms between snapshots. */
  readonly interval: number;
  /** ms between heartbeat comments. */
  readonly heartbeat: number;
  /** Most concurrent streams. */
  readonly max: number;
  /** Serialises the current snapshot. */
  readonly build: () => string;
  readonly log: OnceLogger;
  /** Told the number of open streams when it changes. */
  readonly onCount?: (count: number) => void;
}

type Flushable = ServerResponse & { flush?: () => void };

/** The set of open streams and their shared timer. */
export class StreamHub {
  readonly #settings: StreamSettings;
  readonly #clients = new Set<Flushable>();
  #timer: NodeJS.Timeout | undefined;
  #lastHeartbeat = 0;

  constructor(settings: StreamSettings) {
    this.#settings = settings;
  }

  /** Open streams. */
  get size(): number {
    return this.#clients.size;
  }

  /** True when another stream may open. */
  get hasRoom(): boolean {
    return this.#clients.size < this.#settings.max;
  }

  /** Starts a stream on `res` and sends the first snapshot at once. */
  open(req: IncomingMessage, res: ServerResponse): void {
    const client = res as Flushable;
    setCommonHeaders(res);
    res.statusCode = 200;
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    req.socket.setNoDelay(true);
    this.#clients.add(client);
    this.#settings.onCount?.(this.#clients.size);
    const drop = () => this.#remove(client);
    res.once('close', drop);
    res.once('error', drop);
    this.#write(client, `retry: 3000\n\n${this.#event()}`);
    if (this.#timer === undefined) {
      this.#lastHeartbeat = Date.now();
      this.#timer = setInterval(() => this.#tick(), this.#settings.interval);
      this.#timer.unref();
    }
  }

  #event(): string {
    try {
      return `event: snapshot\ndata: ${this.#settings.build()}\n\n`;
    } catch (error) {
      this.#settings.log.errorOnce('DASHBOARD_STREAM_SNAPSHOT', 'could not build a snapshot for the stream', {
        error: error instanceof Error ? error.message : String(error),
      });
      return '';
    }
  }

  #tick(): void {
    let payload = this.#event();
    const now = Date.now();
    if (now - this.#lastHeartbeat >= this.#settings.heartbeat) {
      this.#lastHeartbeat = now;
      payload = `: heartbeat ${now}\n\n${payload}`;
    }
    if (payload === '') return;
    for (const client of this.#clients) this.#write(client, payload);
  }

  #write(client: Flushable, payload: string): void {
    if (payload === '' || client.writableEnded || client.destroyed) return;
    if (client.writableLength > MAX_BUFFERED) {
      // The client stopped reading: drop it rather than buffer without bound.
      client.destroy();
      this.#remove(client);
      return;
    }
    client.write(payload);
    client.flush?.();
  }

  #remove(client: Flushable): void {
    if (!this.#clients.delete(client)) return;
    this.#settings.onCount?.(this.#clients.size);
    if (this.#clients.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Ends every stream and stops the timer. */
  close(): void {
    for (const client of [...this.#clients]) {
      this.#remove(client);
      if (!client.writableEnded) client.end();
    }
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
