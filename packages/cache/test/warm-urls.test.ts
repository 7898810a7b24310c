/**
 * `responses.warm(urls)` (issue 18, item 4: "`warm(urls | keys)` fills entries on demand"): a
 * real app on 127.0.0.1:0 behind `responseCache()`; warm() asks the app once per URL and the
 * first real request is a HIT that does not reach the app. An unstorable URL is asked for but
 * not held; bad input is a TypeError.
 */
import http from 'node:http';
import { responseCache } from '@perfstack/cache';
import { createRegistry } from '@perfstack/core';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';

let server: TestServer | undefined;
let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await server?.close();
  await close?.();
  server = undefined;
  close = undefined;
});

describe('responses.warm(urls)', () => {
  it('fills entries by asking the app once per URL; the first real request is a HIT that does not reach the app', async () => {
    const responses = responseCache({ registry: createRegistry() });
    close = () => responses.close();
    const calls: string[] = [];
    const app = express();
    app.use(responses);
    app.get('/products/:id', (req, res) => {
      calls.push(req.url);
      res.set('Cache-Control', 'max-age=300').json({ id: req.params.id });
    });
    app.get('/private', (req, res) => {
      calls.push(req.url);
      res.set('Cache-Control', 'private').json({ private: true });
    });
    server = await listen(http.createServer(app));
    const held = await responses.warm([
      `${server.url}/products/1`,
      `${server.url}/products/2`,
      `${server.url}/private`,
    ]);
    expect(held).toBe(2);
    expect(calls.sort()).toEqual(['/private', '/products/1', '/products/2']);
    const first = await request(`${server.url}/products/1`);
    expect([first.status, first.headers['x-cache'], first.text]).toEqual([200, 'HIT', '{"id":"1"}']);
    const unstorable = await request(`${server.url}/private`);
    expect(unstorable.headers['x-cache']).toBe('MISS');
    // /products/1 and /products/2 were asked once (by warm), /private twice (warm, then the request)
    expect(calls.sort()).toEqual(['/private', '/private', '/products/1', '/products/2']);
  });

  it('refuses what is not a list of absolute http(s) URLs', async () => {
    const responses = responseCache({ registry: createRegistry() });
    close = () => responses.close();
    await expect(responses.warm('/products' as never)).rejects.toThrow(TypeError);
    await expect(responses.warm(['/products'])).rejects.toThrow(/absolute http\(s\) URLs/);
    await expect(responses.warm(['ftp://example.com/x'])).rejects.toThrow(/absolute http\(s\) URLs/);
  });
});
