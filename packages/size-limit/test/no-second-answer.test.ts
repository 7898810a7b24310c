/**
 * After the size limit refuses a body (413), the body parsers behind it do nothing and the
 * app's error handler is not called: one answer per request, and no `ERR_HTTP_HEADERS_SENT`
 * on stderr. Every common parser (express.json/urlencoded/raw/text on Express 4 and 5,
 * multer, @koa/bodyparser, koa-body), with parser limits above and below the stack's, bodies
 * sent with `Content-Length` and chunked. The apps run in a child process whose real stderr
 * is read (fixtures/parser-apps.mjs).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, waitFor } from '../../../test/helpers/http.js';
import { openRequest } from './client.js';

const LIMIT = 1024;
const SIZE = 5000;

let child: ChildProcess;
let stderr = '';
let ports: Record<'express5' | 'express4' | 'koa', number>;

beforeAll(async () => {
  child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/parser-apps.mjs', import.meta.url))], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  ports = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve(JSON.parse(line as string).ports);
    });
    child.once('exit', (code) => reject(new Error(`fixture exited with ${code}: ${stderr}`)));
  });
}, 20_000);

afterAll(async () => {
  if (child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
});

interface Case {
  readonly app: 'express5' | 'express4' | 'koa';
  readonly path: string;
  readonly type: string;
  readonly body: () => Buffer;
}

const json = () => Buffer.from(JSON.stringify({ text: 'x'.repeat(SIZE) }));
const form = () => Buffer.from(`text=${'x'.repeat(SIZE)}`);
const text = () => Buffer.from('x'.repeat(SIZE));
const BOUNDARY = 'perfstackboundary';
const multipart = () =>
  Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n${'x'.repeat(SIZE)}\r\n--${BOUNDARY}--\r\n`,
  );

const expressCases = (app: 'express5' | 'express4'): Case[] => [
  { app, path: '/json', type: 'application/json', body: json },
  { app, path: '/json-small', type: 'application/json', body: json },
  { app, path: '/urlencoded', type: 'application/x-www-form-urlencoded', body: form },
  { app, path: '/urlencoded-small', type: 'application/x-www-form-urlencoded', body: form },
  { app, path: '/raw', type: 'application/octet-stream', body: text },
  { app, path: '/text', type: 'text/plain', body: text },
  { app, path: '/text-small', type: 'text/plain', body: text },
  { app, path: '/multer', type: `multipart/form-data; boundary=${BOUNDARY}`, body: multipart },
];

const cases: Case[] = [
  ...expressCases('express5'),
  ...expressCases('express4'),
  { app: 'koa', path: '/koa-bodyparser', type: 'application/json', body: json },
  { app: 'koa', path: '/koa-body', type: 'application/json', body: json },
  { app: 'koa', path: '/koa-body', type: 'text/plain', body: text },
  { app: 'koa', path: '/koa-body-multipart', type: `multipart/form-data; boundary=${BOUNDARY}`, body: multipart },
];

const url = (c: Case) => `http://127.0.0.1:${ports[c.app]}${c.path}`;

interface State {
  readonly calls: Array<{ status?: number; message: string }>;
  readonly sockets: number;
}

async function state(app: Case['app']): Promise<State> {
  return (await request(`http://127.0.0.1:${ports[app]}/state`)).json<State>();
}

describe('one answer after a 413', () => {
  it.each(cases.map((c) => [`${c.app} ${c.path} (${c.type.split(';')[0]})`, c] as const))(
    '%s with Content-Length: exactly the 413 problem, the error handler never called',
    async (_name, c) => {
      const body = c.body();
      const res = await request(url(c), { method: 'POST', headers: { 'content-type': c.type }, body });
      expect(res.status).toBe(413);
      expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(res.headers.connection).toBe('close');
      expect(res.json()).toEqual({
        type: 'urn:perfstack:problem:payload-too-large',
        title: 'Payload Too Large',
        status: 413,
        detail: `The request body of ${body.length} bytes is larger than the limit of ${LIMIT} bytes.`,
        code: 'PAYLOAD_TOO_LARGE',
        limit: LIMIT,
        contentLength: body.length,
      });
    },
  );

  it.each(cases.map((c) => [`${c.app} ${c.path} (${c.type.split(';')[0]})`, c] as const))(
    '%s chunked: exactly the 413 problem, the error handler never called',
    async (_name, c) => {
      const body = c.body();
      const open = openRequest(url(c), { headers: { 'content-type': c.type, 'transfer-encoding': 'chunked' } });
      open.req.on('error', () => {});
      open.req.write(body.subarray(0, 512));
      open.req.end(body.subarray(512));
      const res = await open.response;
      expect(res.status).toBe(413);
      expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
      expect(res.json()).toEqual({
        type: 'urn:perfstack:problem:payload-too-large',
        title: 'Payload Too Large',
        status: 413,
        detail: `The request body is larger than the limit of ${LIMIT} bytes.`,
        code: 'PAYLOAD_TOO_LARGE',
        limit: LIMIT,
        received: expect.any(Number),
      });
      expect(res.json<{ received: number }>().received).toBeGreaterThan(LIMIT);
    },
  );

  it('no error handler ran for any refused body, and nothing was printed to stderr', async () => {
    // Every refused connection has closed (the parsers' late callbacks fire on close).
    for (const app of ['express5', 'express4', 'koa'] as const) {
      await waitFor(async () => (await state(app)).sockets === 0, 10_000);
      expect((await state(app)).calls).toEqual([]);
    }
    expect(stderr).not.toContain('ERR_HTTP_HEADERS_SENT');
    expect(stderr).toBe('');
  });

  it('the error handlers do run for bodies under the stack limit (malformed JSON: 400, over the parser limit: 413)', async () => {
    for (const app of ['express5', 'express4'] as const) {
      const bad = await request(`http://127.0.0.1:${ports[app]}/json`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"oops',
      });
      expect([bad.status, bad.json<{ handled: string }>().handled.length > 0]).toEqual([400, true]);
      const big = await request(`http://127.0.0.1:${ports[app]}/json-small`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: 'x'.repeat(500) }),
      });
      expect(big.status).toBe(413);
      expect(big.json()).toEqual({ handled: 'request entity too large' });
      expect((await state(app)).calls.map((c) => c.status)).toEqual([400, 413]);
    }
    const koaBad = await request(`http://127.0.0.1:${ports.koa}/koa-bodyparser`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"oops',
    });
    expect(koaBad.status).toBe(400);
    expect((await state('koa')).calls.map((c) => c.status)).toEqual([400]);
    expect(stderr).not.toContain('ERR_HTTP_HEADERS_SENT');
  });
});
