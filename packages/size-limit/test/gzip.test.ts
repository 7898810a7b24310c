/**
 * `Content-Encoding` bodies: with `decompress`, the layer decodes them, limits the decoded
 * size too (a zip bomb is cut off at the limit, decoded chunk by chunk) and hands plain
 * bytes to the parsers; without it, it leaves them alone for the parsers to decode.
 */
import type { RequestListener } from 'node:http';
import zlib from 'node:zlib';
import { type SizeLimiter, sizeLimit } from '@perfstack/size-limit';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { openRequest } from './client.js';

const KB = 1024;
const MB = 1024 * KB;

let server: TestServer | undefined;
let limiter: SizeLimiter | undefined;

afterEach(async () => {
  await server?.close();
  await limiter?.close();
  server = undefined;
  limiter = undefined;
});

async function start(options: Parameters<typeof sizeLimit>[0]) {
  limiter = sizeLimit(options);
  const app = express();
  app.use(limiter);
  app.post('/json', express.json({ limit: '500mb' }), (req, res) => {
    res.json({ encoding: req.headers['content-encoding'] ?? null, pad: (req.body as { pad: string }).pad.length });
  });
  app.post('/stream', async (req, res) => {
    let bytes = 0;
    let first = '';
    for await (const chunk of req) {
      if (first === '') first = (chunk as Buffer).subarray(0, 4).toString('latin1');
      bytes += (chunk as Buffer).length;
    }
    res.json({ encoding: req.headers['content-encoding'] ?? null, bytes, first });
  });
  server = await listen(app as unknown as RequestListener);
  return server.url;
}

/** A gzip of `size` zero bytes, compressed as a stream (the zeros are never in memory at once). */
async function gzipZeros(size: number): Promise<Buffer> {
  const gzip = zlib.createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise((resolve) => gzip.on('end', resolve));
  const zeros = Buffer.alloc(MB);
  for (let i = 0; i < size / MB; i++) {
    if (!gzip.write(zeros)) await new Promise((resolve) => gzip.once('drain', resolve));
  }
  gzip.end();
  await done;
  return Buffer.concat(chunks);
}

const json = (size: number) => Buffer.from(JSON.stringify({ pad: 'p'.repeat(size) }));

describe('decompress: true', () => {
  for (const [encoding, encode] of [
    ['gzip', zlib.gzipSync],
    ['deflate', zlib.deflateSync],
    ['br', zlib.brotliCompressSync],
  ] as const) {
    it(`hands express.json() the decoded body of a ${encoding} request`, async () => {
      const url = await start({ decompress: true, limit: '64kb' });
      const res = await request(`${url}/json`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-encoding': encoding },
        body: encode(json(50 * KB)),
      });
      expect(res.status).toBe(200);
      expect(res.json()).toEqual({ encoding: null, pad: 50 * KB });
    });
  }

  it('hands a stream reader plain bytes', async () => {
    const url = await start({ decompress: true });
    const res = await request(`${url}/stream`, {
      method: 'POST',
      headers: { 'content-encoding': 'gzip' },
      body: zlib.gzipSync(Buffer.from('hello world')),
    });
    expect(res.json()).toEqual({ encoding: null, bytes: 11, first: 'hell' });
  });

  it('refuses a small gzip body whose decoded size is over the limit', async () => {
    const url = await start({ decompress: true, limit: '64kb' });
    const compressed = zlib.gzipSync(json(MB));
    expect(compressed.length).toBeLessThan(64 * KB);
    const res = await request(`${url}/json`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: compressed,
    });
    expect(res.status).toBe(413);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    expect(res.headers.connection).toBe('close');
    const body = res.json<{ decoded: number }>();
    expect(body).toEqual({
      type: 'urn:perfstack:problem:payload-too-large',
      title: 'Payload Too Large',
      status: 413,
      detail: 'The decoded request body is larger than the limit of 65536 bytes.',
      code: 'PAYLOAD_TOO_LARGE',
      limit: 65536,
      decoded: expect.any(Number),
      encoding: 'gzip',
    });
    // Decoding stopped at the chunk that crossed the limit.
    expect(body.decoded).toBeGreaterThan(64 * KB);
    expect(body.decoded).toBeLessThanOrEqual(64 * KB + 64 * KB);
  });

  it('cuts a zip bomb off at the limit without decoding the rest', async () => {
    const url = await start({ decompress: true, limit: '1mb' });
    const bomb = await gzipZeros(128 * MB);
    expect(bomb.length).toBeLessThan(MB);
    const before = process.memoryUsage();
    const res = await request(`${url}/stream`, {
      method: 'POST',
      headers: { 'content-encoding': 'gzip', 'content-type': 'application/octet-stream' },
      body: bomb,
    });
    const after = process.memoryUsage();
    expect(res.status).toBe(413);
    const body = res.json<{ decoded: number }>();
    expect(body.decoded).toBeLessThanOrEqual(MB + 64 * KB);
    // 128 MB decoded would show; a cut-off bomb leaves well under 64 MB of growth.
    expect(after.arrayBuffers + after.heapUsed - (before.arrayBuffers + before.heapUsed)).toBeLessThan(64 * MB);
  });

  it('refuses a compressed Content-Length over the limit before decoding anything', async () => {
    const url = await start({ decompress: true, limit: '1kb' });
    const open = openRequest(`${url}/stream`, { headers: { 'content-encoding': 'gzip', 'content-length': 4 * KB } });
    const res = await open.response;
    expect(res.status).toBe(413);
    expect(res.json()).toMatchObject({ limit: 1024, contentLength: 4 * KB });
  });

  it('answers 400 to a body that is not valid gzip', async () => {
    const url = await start({ decompress: true });
    const res = await request(`${url}/stream`, {
      method: 'POST',
      headers: { 'content-encoding': 'gzip' },
      body: Buffer.from('this is not gzip at all'),
    });
    expect(res.status).toBe(400);
    expect(res.headers.connection).toBe('close');
    expect(res.json()).toEqual({
      type: 'urn:perfstack:problem:bad-request',
      title: 'Bad Request',
      status: 400,
      detail: 'The request body could not be decoded as gzip.',
      code: 'BAD_REQUEST',
      encoding: 'gzip',
    });
    expect(limiter?.stats().rejected.BAD_REQUEST).toBe(1);
  });

  it('leaves encodings it does not decode alone', async () => {
    const url = await start({ decompress: true });
    const res = await request(`${url}/stream`, {
      method: 'POST',
      headers: { 'content-encoding': 'zstd' },
      body: Buffer.from('opaque'),
    });
    expect(res.json()).toEqual({ encoding: 'zstd', bytes: 6, first: 'opaq' });
  });
});

describe('decompress: false (default)', () => {
  it('leaves a gzip body and its headers to the parser, limiting the wire size', async () => {
    const url = await start({ limit: '64kb' });
    const compressed = zlib.gzipSync(json(MB));
    const res = await request(`${url}/json`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: compressed,
    });
    // body-parser decodes it itself, under its own limit.
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ encoding: 'gzip', pad: MB });
    const raw = await request(`${url}/stream`, {
      method: 'POST',
      headers: { 'content-encoding': 'gzip' },
      body: compressed,
    });
    expect(raw.json()).toEqual({ encoding: 'gzip', bytes: compressed.length, first: '\x1f\x8b\x08\x00' });
  });
});
