/**
 * A refused Content-Length body whose rest is small (at most DRAIN_LIMIT bytes) is read off
 * and dropped, so a keep-alive client keeps its connection; a larger one, or a client that
 * stops sending, still has its connection closed.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import { sizeLimit } from '@perfstack/size-limit';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, type TestServer } from '../../../test/helpers/http.js';
import { DRAIN_LIMIT, MAX_DRAINS_PER_CONNECTION } from '../src/body-guard.js';

let server: TestServer | undefined;
let closeLimiter: (() => Promise<void>) | undefined;

afterEach(async () => {
  await server?.close();
  await closeLimiter?.();
  server = undefined;
  closeLimiter = undefined;
});

/**
 * Express 5: the limiter (10 kB), express.json (1 MB, or `parserLimit`), a JSON route, an
 * error handler that counts.
 */
async function start(options: Parameters<typeof sizeLimit>[0] = {}, parserLimit = '1mb') {
  const limiter = sizeLimit({ limit: '10kb', ...options });
  closeLimiter = limiter.close;
  const counts = { connections: 0, handlerErrors: 0 };
  const app = express();
  app.use(limiter);
  app.use(express.json({ limit: parserLimit }));
  app.get('/', (_req, res) => {
    res.json({ ok: true });
  });
  app.post('/json', (req, res) => {
    res.status(201).json({ got: Object.keys(req.body ?? {}).length });
  });
  app.use((error: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    counts.handlerErrors += 1;
    if (!res.headersSent) res.status(500).json({ error: String(error) });
  });
  const raw = http.createServer(app as (req: IncomingMessage, res: ServerResponse) => void);
  raw.on('connection', () => {
    counts.connections += 1;
  });
  server = await listen(raw);
  return { url: server.url, counts, limiter };
}

interface RawAnswer {
  status: number;
  connection: string | undefined;
  body: unknown;
}

/**
 * Sends `payload` as a JSON POST and then a GET on one connection, the way a keep-alive load
 * generator does (the GET right behind the body), and reads the answers until the server
 * has answered both or closed the connection.
 */
function postThenGet(url: string, payload: string, posts = 1): Promise<RawAnswer[]> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1');
    let buffer = Buffer.alloc(0);
    const answers: RawAnswer[] = [];
    const parse = () => {
      for (;;) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = buffer.subarray(0, end).toString('latin1').split('\r\n');
        const header = (name: string) =>
          head
            .find((line) => line.toLowerCase().startsWith(`${name}:`))
            ?.slice(name.length + 1)
            .trim();
        const length = Number(header('content-length'));
        if (buffer.length < end + 4 + length) return;
        const body = buffer.subarray(end + 4, end + 4 + length).toString('utf8');
        answers.push({
          status: Number(head[0]?.split(' ')[1]),
          connection: header('connection'),
          body: JSON.parse(body),
        });
        buffer = buffer.subarray(end + 4 + length);
        if (answers.length === posts + 1) socket.end();
      }
    };
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      parse();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(answers));
    const post = `POST /json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`;
    socket.write(`${post.repeat(posts)}GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}

const jsonOf = (bytes: number) => JSON.stringify({ name: 'x'.repeat(bytes - 11) });

describe('a refused body with a small rest is drained', () => {
  it('answers 413 with keep-alive, and the next request runs on the same connection', async () => {
    const { url, counts, limiter } = await start();
    const payload = jsonOf(20 * 1024);
    const [first, second] = await postThenGet(url, payload);
    expect(first?.status).toBe(413);
    expect(first?.connection).toBe('keep-alive');
    expect(first?.body).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', contentLength: payload.length, limit: 10240 });
    expect(second).toEqual({ status: 200, connection: 'keep-alive', body: { ok: true } });
    expect(counts.connections).toBe(1);
    // The parser never saw the request complete: no second answer, no error for the app.
    expect(counts.handlerErrors).toBe(0);
    expect(limiter.stats().rejected.PAYLOAD_TOO_LARGE).toBe(1);
  });

  it(`closes the connection when more than DRAIN_LIMIT (${DRAIN_LIMIT} bytes) is still to come`, async () => {
    const { url, counts } = await start();
    const answers = await postThenGet(url, jsonOf(10 * 1024 + DRAIN_LIMIT + 64 * 1024));
    // The 413, then the connection is closed: the GET behind the body is never answered.
    expect(answers).toHaveLength(1);
    expect(answers[0]?.status).toBe(413);
    expect(answers[0]?.connection).toBe('close');
    expect(counts.connections).toBe(1);
    expect(counts.handlerErrors).toBe(0);
  });

  it(`closes the connection after MAX_DRAINS_PER_CONNECTION (${MAX_DRAINS_PER_CONNECTION}) drained refusals`, async () => {
    const { url, counts } = await start();
    const answers = await postThenGet(url, jsonOf(20 * 1024), MAX_DRAINS_PER_CONNECTION + 2);
    // Every refusal up to the cap keeps the connection; the next one closes it, and the
    // requests behind it are not answered on this connection.
    expect(answers.map((a) => `${a.status} ${a.connection}`)).toEqual([
      ...Array.from({ length: MAX_DRAINS_PER_CONNECTION }, () => '413 keep-alive'),
      '413 close',
    ]);
    expect(counts.connections).toBe(1);
  });

  it('prints no MaxListenersExceededWarning for the parsers left waiting on a connection of drained refusals', async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    try {
      // express.json with the same limit: it refuses the body itself, then leaves a waiter;
      // and one 'close' listener per connection of the app's own (a graceful-shutdown
      // tracker such as stoppable or http-terminator keeps one).
      const { url } = await start({}, '10kb');
      server?.server.on('connection', (socket: net.Socket) => socket.on('close', () => {}));
      const answers = await postThenGet(url, jsonOf(20 * 1024), MAX_DRAINS_PER_CONNECTION);
      expect(answers.map((a) => a.status)).toEqual([...Array(MAX_DRAINS_PER_CONNECTION).fill(413), 200]);
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
  });

  it('closes the connection of a client that stops sending the rest, after lingerTimeout', async () => {
    const { url } = await start({ lingerTimeout: 100 });
    const { port } = new URL(url);
    const socket = net.connect(Number(port), '127.0.0.1');
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('utf8');
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    // 20 kB announced, 12 kB sent (over the limit, so refused at once), the rest never comes.
    socket.write(
      `POST /json HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 20480\r\n\r\n${'x'.repeat(12 * 1024)}`,
    );
    await closed;
    expect(received.startsWith('HTTP/1.1 413 Payload Too Large\r\n')).toBe(true);
    expect(received).toContain('Connection: keep-alive');
  });
});
