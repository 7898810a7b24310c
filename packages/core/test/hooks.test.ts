import type { IncomingMessage, ServerResponse } from 'node:http';
import { addServerTiming, captureBody, onBeforeHead } from '@perfstack/core';
import { describe, expect, it } from 'vitest';
import { listen, request } from '../../../test/helpers/http.js';

/** Installs a recorder on the response and returns what it saw. */
function record(res: ServerResponse) {
  const seen = { status: 0, headers: {} as Record<string, unknown>, chunks: [] as Buffer[], ended: false };
  onBeforeHead(res, (r) => {
    seen.status = r.statusCode;
    seen.headers = { ...r.getHeaders() };
    r.setHeader('X-Hooked', 'yes');
  });
  captureBody(res, { write: (c) => seen.chunks.push(c), end: () => (seen.ended = true) });
  return seen;
}

async function withServer(
  app: (req: IncomingMessage, res: ServerResponse, seen: ReturnType<typeof record>) => void,
  run: (url: string, seen: () => ReturnType<typeof record>) => Promise<void>,
) {
  let last: ReturnType<typeof record> | undefined;
  const server = await listen((req, res) => {
    last = record(res);
    app(req, res, last);
  });
  try {
    await run(server.url, () => last as ReturnType<typeof record>);
  } finally {
    await server.close();
  }
}

describe('response hooks', () => {
  it('sees headers passed to writeHead as an object, and can add headers', async () => {
    await withServer(
      (_req, res) => {
        res.setHeader('X-Before', '1');
        res.writeHead(201, { 'Content-Type': 'text/plain', 'X-Inline': 'a' });
        res.end('created');
      },
      async (url, seen) => {
        const res = await request(url);
        expect(res.status).toBe(201);
        expect(res.headers['x-hooked']).toBe('yes');
        expect(res.headers['x-inline']).toBe('a');
        expect(res.text).toBe('created');
        expect(seen().status).toBe(201);
        expect(seen().headers).toMatchObject({ 'x-before': '1', 'x-inline': 'a', 'content-type': 'text/plain' });
        expect(Buffer.concat(seen().chunks).toString()).toBe('created');
        expect(seen().ended).toBe(true);
      },
    );
  });

  it('handles writeHead with a reason phrase and a raw header array (duplicates kept)', async () => {
    await withServer(
      (_req, res) => {
        res.writeHead(200, 'Fine', ['Set-Cookie', 'a=1', 'set-cookie', 'b=2', 'X-One', 'x']);
        res.end();
      },
      async (url, seen) => {
        const res = await request(url);
        expect(res.status).toBe(200);
        expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
        expect(res.headers['x-one']).toBe('x');
        expect(seen().headers['set-cookie']).toEqual(['a=1', 'b=2']);
      },
    );
  });

  it('captures implicit heads and streamed chunks with encodings', async () => {
    await withServer(
      (_req, res) => {
        res.statusCode = 202;
        res.write('héllo ', 'utf8');
        res.write(Buffer.from('wörld '));
        res.write(new Uint8Array([0x21]));
        setTimeout(() => res.end('6869', 'hex'), 5);
      },
      async (url, seen) => {
        const res = await request(url);
        expect(res.status).toBe(202);
        expect(res.headers['x-hooked']).toBe('yes');
        expect(res.text).toBe('héllo wörld !hi');
        expect(Buffer.concat(seen().chunks).toString()).toBe('héllo wörld !hi');
      },
    );
  });

  it('calls end(cb) callbacks and ends sinks once', async () => {
    let callbacks = 0;
    let ends = 0;
    const server = await listen((_req, res) => {
      captureBody(res, { write() {}, end: () => ends++ });
      res.end(() => {
        callbacks++;
      });
      res.end();
    });
    try {
      const res = await request(server.url);
      expect(res.status).toBe(200);
      await new Promise((r) => setTimeout(r, 20));
      expect(callbacks).toBe(1);
      expect(ends).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('passes HEAD responses through with no body', async () => {
    await withServer(
      (_req, res) => {
        res.setHeader('Content-Length', '5');
        res.end();
      },
      async (url, seen) => {
        const res = await request(url, { method: 'HEAD' });
        expect(res.status).toBe(200);
        expect(res.headers['content-length']).toBe('5');
        expect(res.body.length).toBe(0);
        expect(seen().status).toBe(200);
      },
    );
  });

  it('runs listeners innermost first and joins Server-Timing entries after them', async () => {
    const order: string[] = [];
    const server = await listen((_req, res) => {
      onBeforeHead(res, () => {
        order.push('outer');
        addServerTiming(res, 'total', 1.23456);
      });
      onBeforeHead(res, () => order.push('inner'));
      addServerTiming(res, 'cache', 0.5, 'miss');
      res.setHeader('Server-Timing', 'db;dur=3');
      res.end('x');
    });
    try {
      const res = await request(server.url);
      expect(order).toEqual(['inner', 'outer']);
      expect(res.headers['server-timing']).toBe('db;dur=3, cache;dur=0.5;desc=miss, total;dur=1.23');
    } finally {
      await server.close();
    }
  });

  it('detached sinks stop receiving chunks', async () => {
    const chunks: string[] = [];
    const server = await listen((_req, res) => {
      const detach = captureBody(res, { write: (c) => chunks.push(c.toString()), end() {} });
      res.write('a');
      detach();
      res.end('b');
    });
    try {
      expect((await request(server.url)).text).toBe('ab');
      expect(chunks).toEqual(['a']);
    } finally {
      await server.close();
    }
  });
});
