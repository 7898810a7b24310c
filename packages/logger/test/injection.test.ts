/**
 * Log injection: whatever a client puts in a header or the URL (CR, LF, quotes, JSON of
 * its own, a 64 KB header) and whatever an app logs, every output line stays one JSON
 * object and no line can be forged. Requests go over raw TCP so that nothing in a client
 * library cleans them first.
 */
import http from 'node:http';
import net from 'node:net';
import { accessLog } from '@perfstack/logger';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen, type TestServer } from '../../../test/helpers/http.js';
import { Capture } from './capture.js';

const FORGED = '{"level":60,"msg":"forged","reqId":"forged"}';

/** Sends raw bytes, returns the status code of the answer (0 when the server just closed). */
function rawRequest(port: number, head: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      data += chunk;
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0)));
    socket.end(Buffer.from(head, 'latin1'));
  });
}

let server: TestServer;
let out: Capture;
let log: ReturnType<typeof accessLog>;

beforeAll(async () => {
  out = new Capture();
  // Every header is logged here, so any header can carry the injection attempt.
  log = accessLog({ destination: out, headers: 'all' });
  const app = http.createServer({ maxHeaderSize: 256 * 1024 }, (req, res) =>
    log(req, res, () => {
      if (req.url === '/app-log') {
        req.log.info(`user input: x\n${FORGED}\r\n${FORGED}\u2028${FORGED}`);
        req.log.info({ note: `\n${FORGED}\n` }, 'object with newlines');
      }
      res.setHeader('x-echo', 'fine');
      res.end('ok');
    }),
  );
  server = await listen(app);
});

afterAll(async () => {
  await server.close();
  await log.close();
});

function assertNoForgery(): void {
  const lines = out.lines();
  expect(out.raw.split('\n').length - 1).toBe(lines.length);
  for (const line of lines) {
    expect(line.level).not.toBe(60);
    expect(line.msg).not.toBe('forged');
    expect(line.reqId).not.toBe('forged');
  }
}

describe('log injection', () => {
  it.each([
    ['bare LF in a header value', `GET /a HTTP/1.1\r\nHost: x\r\nX-Evil: a\n${FORGED}\r\nConnection: close\r\n\r\n`],
    ['CR in a header value', `GET /b HTTP/1.1\r\nHost: x\r\nX-Evil: a\r${FORGED}\r\nConnection: close\r\n\r\n`],
    [
      'CRLF then a forged header line',
      `GET /c HTTP/1.1\r\nHost: x\r\nX-Evil: a\r\n${FORGED}\r\nConnection: close\r\n\r\n`,
    ],
    ['LF in the request line', `GET /d\n${FORGED} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`],
  ])('%s: refused by the parser or logged as one line', async (_name, head) => {
    out.clear();
    const status = await rawRequest(server.port, head);
    expect([200, 400]).toContain(status);
    assertNoForgery();
  });

  it('quotes, braces, backslashes and non-ASCII bytes in headers and the URL stay inside their JSON strings', async () => {
    out.clear();
    const evil = `"},"level":60,"msg":"forged","x":{"a":"\\\\\t\u00e2\u0080\u00a8`;
    const status = await rawRequest(
      server.port,
      `GET /e?q=%0D%0A${encodeURIComponent(FORGED)}&r="x\\y" HTTP/1.1\r\nHost: x\r\nX-Evil: ${evil}\r\nConnection: close\r\n\r\n`,
    );
    expect(status).toBe(200);
    const [line] = await out.waitForAccessLines(1);
    expect(line?.req?.headers['x-evil']).toBe(evil);
    expect(line?.req?.url).toBe(`/e?q=%0D%0A${encodeURIComponent(FORGED)}&r="x\\y"`);
    assertNoForgery();
  });

  it('a 64 KB header and a 64 KB URL are cut, marked, and keep the line whole', async () => {
    out.clear();
    const big = `${'A'.repeat(40_000)} ${'b'.repeat(25_536)}`;
    const status = await rawRequest(
      server.port,
      `GET /f?x=${'c'.repeat(65_536)} HTTP/1.1\r\nHost: x\r\nX-Big: ${big}\r\nConnection: close\r\n\r\n`,
    );
    expect(status).toBe(200);
    const [line] = await out.waitForAccessLines(1);
    const header = String(line?.req?.headers['x-big']);
    expect(header.length).toBeLessThan(4200);
    expect(header).toMatch(/…\[TRUNCATED \d+ chars\]$/);
    // The cut backs off over the whole run of token characters (`x=ccc…`): no partial value is left.
    expect(line?.req?.url).toBe('/f?…[TRUNCATED 65538 chars]');
    expect(out.raw.length).toBeLessThan(12_000);
    assertNoForgery();
  });

  it('CR, LF and U+2028 in what an app logs are escaped', async () => {
    out.clear();
    const status = await rawRequest(server.port, 'GET /app-log HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(status).toBe(200);
    await out.waitForAccessLines(1);
    const lines = out.lines();
    expect(lines).toHaveLength(3);
    expect(lines[0]?.msg).toBe(`user input: x\n${FORGED}\r\n${FORGED}\u2028${FORGED}`);
    expect(lines[1]?.note).toBe(`\n${FORGED}\n`);
    assertNoForgery();
  });
});
