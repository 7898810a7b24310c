/** Real local origins for the outbound client tests: node:http on 127.0.0.1, port 0, killable and revivable on the same port. */
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly at: number;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, origin: TestOrigin) => void;

export class TestOrigin {
  readonly name: string;
  handler: Handler;
  /** Requests other than health probes. */
  readonly seen: Seen[] = [];
  probes = 0;
  /** TCP connections accepted (keep-alive reuse keeps this low). */
  connections = 0;
  port = 0;
  #server: Server | undefined;

  constructor(name: string, handler?: Handler) {
    this.name = name;
    this.handler =
      handler ??
      ((_req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ origin: this.name }));
      });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get hits(): number {
    return this.seen.length;
  }

  async start(port = 0): Promise<this> {
    const server = createServer((req, res) => {
      if (req.url === '/health') {
        this.probes++;
        res.end('ok');
        return;
      }
      this.seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, at: performance.now() });
      this.handler(req, res, this);
    });
    server.on('connection', () => {
      this.connections++;
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.#server = server;
    return this;
  }

  /** Stops listening and cuts every connection, like a crashed process. */
  async kill(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  /** Listens again on the same port. */
  revive(): Promise<this> {
    return this.start(this.port);
  }
}

export async function startOrigins(...names: string[]): Promise<TestOrigin[]> {
  return Promise.all(names.map((name) => new TestOrigin(name).start()));
}

/** Polls `condition` every 10 ms until it holds or `timeoutMs` passes. */
export async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The value at quantile q (nearest rank). */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] as number;
}
