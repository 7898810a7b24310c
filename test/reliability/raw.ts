/**
 * A raw-socket HTTP client for what node:http's client refuses to send (bad header
 * bytes, duplicate Content-Length, absolute-form targets...). Reads until the server
 * closes the connection or `timeout` passes, and parses the first response.
 */
import net from 'node:net';

/** One raw exchange. */
export interface RawResponse {
  /** Status of the first response, 0 when none came. */
  readonly status: number;
  /** Lower-cased header names → values of the first response. */
  readonly headers: Readonly<Record<string, string>>;
  /** Everything after the first response head (latin1). */
  readonly body: string;
  /** The whole exchange as received (latin1). */
  readonly text: string;
  /** True when the server neither answered in full nor closed within `timeout`. */
  readonly timedOut: boolean;
}

/** Sends `data` on a new connection to 127.0.0.1:`port` and reads the answer. */
export function raw(port: number, data: string | Buffer, timeout = 3000): Promise<RawResponse> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, timeout);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const head = end === -1 ? text : text.slice(0, end);
      const lines = head.split('\r\n');
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status, headers, body: end === -1 ? '' : text.slice(end + 4), text, timedOut });
    });
    socket.write(data);
  });
}

/** Parses a problem+json body of a raw response (`Connection: close` bodies are not chunked). */
export function problemOf(res: RawResponse): { status: number; code: string } {
  let body = res.body;
  if (res.headers['transfer-encoding'] === 'chunked') {
    // first chunk only: problem bodies are small
    const nl = body.indexOf('\r\n');
    body = body.slice(nl + 2, nl + 2 + Number.parseInt(body.slice(0, nl), 16));
  }
  return JSON.parse(body) as { status: number; code: string };
}
