/**
 * Client keys: IPv6 grouped by subnet, IPv4-mapped IPv6 normalised, X-Forwarded-For only
 * from trusted proxies (misconfiguration warned once), malformed headers never throw.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRegistry, withMiddleware } from '@perfstack/core';
import { type RateLimitOptions, rateLimit } from '@perfstack/rate-limit';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import { memoryLogger } from './support.js';

const servers: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const s of servers.splice(0).reverse()) await s.close();
});

/** A node:http server that answers with the key the limiter used. */
async function keyServer(options: RateLimitOptions): Promise<TestServer> {
  const limiter = rateLimit({ registry: createRegistry(), limit: 1, window: '1m', ...options });
  const server = await listen(
    withMiddleware(limiter, (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ key: (req as unknown as { rateLimit: { key: string } }).rateLimit.key }));
    }),
  );
  servers.push(server, { close: () => limiter.close() });
  return server;
}

const keyOf = async (url: string, xff?: string) => {
  const res = await request(url, xff === undefined ? {} : { headers: { 'x-forwarded-for': xff } });
  return res.status === 200 ? res.json<{ key: string }>().key : res.status;
};

describe('client keys', () => {
  it('IPv6 addresses in one /56 share a counter; different /56s do not', async () => {
    const { url } = await keyServer({ trustProxy: 'loopback' });
    expect(await keyOf(url, '2001:db8:0:1::1')).toBe('2001:db8::/56');
    expect(await keyOf(url, '2001:db8:0:ff:abcd::9')).toBe(429);
    expect(await keyOf(url, '2001:db8:0:100::1')).toBe('2001:db8:0:100::/56');
    expect(await keyOf(url, '2001:db8:1::1')).toBe('2001:db8:1::/56');
  });

  it('ipv6Subnet sets the prefix length', async () => {
    const { url } = await keyServer({ trustProxy: 'loopback', ipv6Subnet: 64 });
    expect(await keyOf(url, '2001:db8:0:1::1')).toBe('2001:db8:0:1::/64');
    expect(await keyOf(url, '2001:db8:0:2::1')).toBe('2001:db8:0:2::/64');
    expect(await keyOf(url, '2001:db8:0:2::2')).toBe(429);
  });

  it('IPv4-mapped IPv6 is normalised to IPv4 (forwarded and from the socket)', async () => {
    const { url } = await keyServer({ trustProxy: 'loopback' });
    expect(await keyOf(url, '::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(await keyOf(url, '10.0.0.1')).toBe(429);

    // A dual-stack server sees IPv4 clients as ::ffff:a.b.c.d on the socket.
    const limiter = rateLimit({ registry: createRegistry(), limit: 5 });
    const server = http.createServer(
      withMiddleware(limiter, (req, res) => {
        res.end(`${req.socket.remoteAddress} ${(req as unknown as { rateLimit: { key: string } }).rateLimit.key}`);
      }),
    );
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(0, '::', () => resolve(true));
    });
    servers.push({ close: () => limiter.close() });
    if (!listening) return; // no IPv6 stack on this machine: the forwarded case above still proves it
    servers.push({ close: () => new Promise<void>((r) => server.close(() => r())) });
    const port = (server.address() as AddressInfo).port;
    const res = await request(`http://127.0.0.1:${port}/`);
    expect(res.text).toBe('::ffff:127.0.0.1 127.0.0.1');
  });

  it('a spoofed X-Forwarded-For from an untrusted peer does not change the key (warned once)', async () => {
    const logger = memoryLogger();
    const { url } = await keyServer({ logger });
    expect(await keyOf(url, '203.0.113.1')).toBe('127.0.0.1');
    expect(await keyOf(url, '203.0.113.2')).toBe(429);
    expect(await keyOf(url, '198.51.100.7, 203.0.113.3')).toBe(429);
    expect(logger.lines.filter((l) => l.includes('ERR_ERL_UNEXPECTED_X_FORWARDED_FOR'))).toHaveLength(1);
  });

  it('a peer that is not in trustProxy cannot set the key either', async () => {
    const { url } = await keyServer({ trustProxy: '10.0.0.0/8' });
    expect(await keyOf(url, '203.0.113.1')).toBe('127.0.0.1');
    expect(await keyOf(url, '203.0.113.2')).toBe(429);
  });

  it('a trusted proxy sets the key; a hop count trusts that many hops', async () => {
    const { url } = await keyServer({ trustProxy: 1 });
    expect(await keyOf(url, '198.51.100.7, 203.0.113.1')).toBe('203.0.113.1');
    expect(await keyOf(url, '203.0.113.2')).toBe('203.0.113.2');
  });

  it("Express with nothing trusted: the socket's address; a req.ip set by an earlier middleware wins", async () => {
    const logger = memoryLogger();
    const limiter = rateLimit({ registry: createRegistry(), logger, limit: 1 });
    const app = express();
    app.use((req, _res, next) => {
      const own = req.headers['x-own-ip'];
      if (typeof own === 'string') Object.defineProperty(req, 'ip', { value: own });
      next();
    });
    app.use(limiter);
    app.use((req, res) => {
      res.json({ key: (req as unknown as { rateLimit: { key: string } }).rateLimit.key });
    });
    const server = await listen(app as never);
    servers.push(server, { close: () => limiter.close() });
    expect(await keyOf(server.url, '203.0.113.1')).toBe('127.0.0.1');
    expect(await keyOf(server.url, '203.0.113.2')).toBe(429);
    const own = await request(server.url, { headers: { 'x-own-ip': '198.51.100.4' } });
    expect(own.json<{ key: string }>().key).toBe('198.51.100.4');
    expect(logger.lines.filter((l) => l.includes('ERR_ERL_UNEXPECTED_X_FORWARDED_FOR'))).toEqual([
      expect.stringContaining("the Express 'trust proxy' setting is false"),
    ]);
  });

  it('requestPropertyName puts the info under that name only', async () => {
    const limiter = rateLimit({ registry: createRegistry(), limit: 5, name: 'five', requestPropertyName: 'quota' });
    const app = express();
    app.use(limiter);
    app.use((req, res) => {
      const r = req as unknown as Record<string, { name: string; remaining: number; key: string } | undefined>;
      res.json({ quota: r.quota, rateLimit: r.rateLimit ?? null });
    });
    const server = await listen(app as never);
    servers.push(server, { close: () => limiter.close() });
    const res = await request(server.url);
    const body = res.json<{ quota: Record<string, unknown>; rateLimit: unknown }>();
    expect(body.rateLimit).toBe(null);
    expect(body.quota).toMatchObject({
      name: 'five',
      limit: 5,
      used: 1,
      remaining: 4,
      key: '127.0.0.1',
      retryAfter: 0,
    });
  });

  it('Express: req.ip is used with its own trust proxy setting; a permissive one is warned once', async () => {
    const logger = memoryLogger();
    const limiter = rateLimit({ registry: createRegistry(), logger, limit: 1 });
    const app = express();
    app.set('trust proxy', true);
    app.use(limiter);
    app.use((req, res) => {
      res.json({ key: (req as unknown as { rateLimit: { key: string } }).rateLimit.key });
    });
    const server = await listen(app as never);
    servers.push(server, { close: () => limiter.close() });
    expect(await keyOf(server.url, '203.0.113.1')).toBe('203.0.113.1');
    expect(await keyOf(server.url, '203.0.113.9')).toBe('203.0.113.9');
    expect(logger.lines.filter((l) => l.includes('ERR_ERL_PERMISSIVE_TRUST_PROXY'))).toHaveLength(1);
  });

  it.each([
    ['garbage', '127.0.0.1'],
    [',', '127.0.0.1'],
    [', , ,', '127.0.0.1'],
    ['999.999.999.999', '127.0.0.1'],
    ['::ffff:zzzz', '127.0.0.1'],
    ['1.2.3.4:8080', '127.0.0.1'],
    ['[2001:db8::1]', '127.0.0.1'],
    ['\u00e9\u00e8', '127.0.0.1'],
    ['x'.repeat(8000), '127.0.0.1'],
    // A scoped IPv6 address is an IP address: grouped by its /56 like any other.
    ['2001:db8::1%eth0', '2001:db8::/56'],
  ])('a malformed X-Forwarded-For (%j) never throws: the key is %s', async (xff, expected) => {
    const logger = memoryLogger();
    for (const trustProxy of [true, 'loopback', 2] as const) {
      const { url } = await keyServer({ trustProxy, logger });
      const res = await request(url, { headers: { 'x-forwarded-for': xff } });
      expect(res.status).toBe(200);
      expect(res.json<{ key: string }>().key).toBe(expected);
    }
  });
});
