/**
 * Test support: a destination that keeps every line written, and helpers to read them
 * back as parsed JSON (every line must parse: a line that does not is a test failure).
 */
import { Writable } from 'node:stream';
import { waitFor } from '../../../test/helpers/http.js';

/** A log line as pino writes it. */
export type LogLine = Record<string, unknown> & {
  level: number;
  msg?: string;
  reqId?: string;
  req?: { method: string; url: string; headers: Record<string, unknown>; remoteAddress?: string };
  res?: { statusCode: number; headers: Record<string, unknown> };
  err?: { type: string; message: string; stack: string; config?: unknown };
  route?: string;
  responseTime?: number;
  body?: unknown;
};

/** A writable that records the raw output. */
export class Capture extends Writable {
  raw = '';

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: () => void): void {
    this.raw += chunk.toString();
    callback();
  }

  /** Every line, parsed; throws if any line is not one JSON object. */
  lines(): LogLine[] {
    if (this.raw === '') return [];
    if (!this.raw.endsWith('\n')) throw new Error('output does not end with a newline');
    return this.raw
      .slice(0, -1)
      .split('\n')
      .map((line) => {
        const parsed = JSON.parse(line) as unknown;
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
          throw new Error(`not an object: ${line}`);
        return parsed as LogLine;
      });
  }

  /** The access lines (one per logged request). */
  accessLines(): LogLine[] {
    return this.lines().filter((line) => line.responseTime !== undefined);
  }

  /** Waits until at least `count` access lines were written. */
  async waitForAccessLines(count: number): Promise<LogLine[]> {
    await waitFor(() => this.accessLines().length >= count, 5000, 5);
    return this.accessLines();
  }

  clear(): void {
    this.raw = '';
  }
}
