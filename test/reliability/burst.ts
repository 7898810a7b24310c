/**
 * A cheap load generator for fleet tests: many persistent raw HTTP/1.1 connections,
 * opened once and reused across repetitions, so that "2,000 concurrent requests" costs the
 * test process 2,000 small writes and parses instead of 2,000 connection set-ups and
 * http.ClientRequest objects. Responses are parsed just enough for the status, one header
 * (optional) and the body length; requests on one connection are pipelined in order.
 */
import net from 'node:net';

/** One request of a burst. */
export interface BurstRequest {
  readonly path: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One response of a burst. */
export interface BurstResponse {
  readonly status: number;
  /** ms from the write to the end of the response. */
  readonly ms: number;
  /** The port (instance) that answered. */
  readonly port: number;
  readonly body: string;
}

interface Waiting {
  readonly at: number;
  readonly resolve: (response: BurstResponse) => void;
  readonly reject: (error: Error) => void;
}

class Connection {
  readonly socket: net.Socket;
  readonly port: number;
  readonly #queue: Waiting[] = [];
  #buffer: Buffer = Buffer.alloc(0);
  readonly #counter: { answered: number };

  constructor(socket: net.Socket, port: number, counter: { answered: number }) {
    this.socket = socket;
    this.port = port;
    this.#counter = counter;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('error', (error) => this.#fail(error));
    socket.on('close', () => this.#fail(new Error(`connection to port ${port} closed`)));
  }

  send(raw: string): Promise<BurstResponse> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ at: performance.now(), resolve, reject });
      this.socket.write(raw);
    });
  }

  #read(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = this.#buffer.subarray(0, end).toString('latin1');
      const match = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const length = match ? Number(match[1]) : 0;
      if (this.#buffer.length < end + 4 + length) return;
      const body = this.#buffer.subarray(end + 4, end + 4 + length).toString();
      this.#buffer = this.#buffer.subarray(end + 4 + length);
      const waiting = this.#queue.shift();
      if (waiting === undefined) continue;
      this.#counter.answered++;
      waiting.resolve({
        status: Number(head.slice(9, 12)),
        ms: performance.now() - waiting.at,
        port: this.port,
        body,
      });
    }
  }

  #fail(error: Error): void {
    for (const waiting of this.#queue.splice(0)) waiting.reject(error);
  }
}

/** Persistent connections spread round-robin over instances. */
export class ConnectionPool {
  readonly #connections: Connection[];
  readonly #counter: { answered: number };

  private constructor(connections: Connection[], counter: { answered: number }) {
    this.#connections = connections;
    this.#counter = counter;
  }

  /** Responses received so far (all bursts). */
  get answered(): number {
    return this.#counter.answered;
  }

  /** Opens `count` connections, spread round-robin over `ports` (127.0.0.1). */
  static async open(ports: readonly number[], count: number): Promise<ConnectionPool> {
    const counter = { answered: 0 };
    const connections = await Promise.all(
      Array.from(
        { length: count },
        (_, i) =>
          new Promise<Connection>((resolve, reject) => {
            const port = ports[i % ports.length] as number;
            const socket = net.connect({ port, host: '127.0.0.1' }, () =>
              resolve(new Connection(socket, port, counter)),
            );
            socket.once('error', reject);
          }),
      ),
    );
    return new ConnectionPool(connections, counter);
  }

  get size(): number {
    return this.#connections.length;
  }

  /**
   * Sends every request at once: request `j` on connection `(offset + j) % size` (so with as
   * many connections as requests, all are in flight together). Resolves in request order.
   */
  burst(requests: readonly BurstRequest[], offset = 0): Promise<BurstResponse[]> {
    return Promise.all(
      requests.map((r, j) => {
        const i = offset + j;
        let raw = `GET ${r.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n`;
        for (const [name, value] of Object.entries(r.headers ?? {})) raw += `${name}: ${value}\r\n`;
        raw += '\r\n';
        return (this.#connections[i % this.#connections.length] as Connection).send(raw);
      }),
    );
  }

  /** Destroys every connection. */
  close(): void {
    for (const c of this.#connections) c.socket.destroy();
  }
}

/** Counts per value of `key(response)`, e.g. admitted per client. */
export function countBy<T>(items: readonly T[], key: (item: T) => string | number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) {
    const k = String(key(item));
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return counts;
}
