/**
 * A client for bodies that the shared `request()` helper cannot send: headers without a
 * body, a body streamed chunk by chunk, a body that stops when the answer arrives.
 */
import http, { type ClientRequest, type IncomingHttpHeaders } from 'node:http';

export interface StreamedResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

export interface OpenRequest {
  readonly req: ClientRequest;
  /** The whole response; rejects if the connection fails before one arrives. */
  readonly response: Promise<StreamedResponse>;
  /** True once a response started arriving. */
  answered(): boolean;
}

/** Opens a request and sends its head at once; the caller writes (or never writes) the body. */
export function openRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string | number | string[]> } = {},
): OpenRequest {
  const target = new URL(url);
  let answered = false;
  const req = http.request({
    host: target.hostname,
    port: target.port,
    path: `${target.pathname}${target.search}`,
    method: options.method ?? 'POST',
    headers: options.headers,
    agent: false,
  });
  const response = new Promise<StreamedResponse>((resolve, reject) => {
    req.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        req.destroy();
      });
      res.on('error', reject);
    });
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
  });
  req.flushHeaders();
  return { req, response, answered: () => answered };
}

/**
 * Writes `total` bytes of `fill` in `chunkSize` pieces, with back-pressure, stopping early
 * when the server answers or the connection closes. Resolves with the bytes written.
 */
export function streamBody(
  open: OpenRequest,
  total: number,
  chunkSize = 64 * 1024,
  chunk: Buffer = Buffer.alloc(chunkSize, 0x61),
): Promise<number> {
  const { req } = open;
  return new Promise((resolve) => {
    let sent = 0;
    const stop = () => resolve(sent);
    req.once('close', stop);
    req.once('error', stop);
    const write = () => {
      while (sent < total) {
        if (open.answered() || req.destroyed) return stop();
        const piece = total - sent >= chunkSize ? chunk : chunk.subarray(0, total - sent);
        sent += piece.length;
        if (!req.write(piece)) {
          req.once('drain', write);
          return;
        }
      }
      req.end();
      stop();
    };
    write();
  });
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
