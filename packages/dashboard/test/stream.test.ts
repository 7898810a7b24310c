import http from 'node:http';
import { createRegistry } from '@perfstack/core';
import { type DashboardMiddleware, dashboard } from '@perfstack/dashboard';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../../../test/helpers/http.js';
import { fakeSources } from './fakes.js';

let server: TestServer | undefined;
let board: DashboardMiddleware | undefined;
const open: http.ClientRequest[] = [];

afterEach(async () => {
  for (const req of open.splice(0)) req.destroy();
  await board?.close();
  await server?.close();
  server = undefined;
  board = undefined;
});

async function start(options: Parameters<typeof dashboard>[0] = {}) {
  const registry = createRegistry();
  const sources = fakeSources();
  board = dashboard({ instanceId: 's', basePath: '/d', streamInterval: 100, registry, sources, ...options });
  const b = board;
  server = await listen((req, res) => b(req, res, () => res.end()));
  const streams = async () =>
    (await registry.getSingleMetricAsString('perfstack_dashboard_streams')).split('\n').at(-1);
  return { sources, streams, url: server.url };
}

interface Stream {
  readonly res: http.IncomingMessage;
  readonly req: http.ClientRequest;
  text: string;
  ended: boolean;
}

function openStream(url: string): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      const stream: Stream = { res, req, text: '', ended: false };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        stream.text += chunk;
      });
      res.on('end', () => {
        stream.ended = true;
      });
      res.on('error', () => {});
      resolve(stream);
    });
    req.on('error', reject);
    open.push(req);
  });
}

const events = (text: string) =>
  text
    .split('\n\n')
    .filter((block) => block.startsWith('event: snapshot\n'))
    .map(
      (block) =>
        JSON.parse(block.slice('event: snapshot\ndata: '.length)) as { at: number; requests: { total: number } },
    );

describe('GET /api/stream', () => {
  it('sends snapshots as text/event-stream, about every streamInterval, with changing data', async () => {
    const { url, sources } = await start();
    const stream = await openStream(`${url}/d/api/stream`);
    expect(stream.res.statusCode).toBe(200);
    expect(stream.res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(stream.res.headers['cache-control']).toBe('no-store');
    expect(stream.res.headers['x-accel-buffering']).toBe('no');
    await waitFor(() => events(stream.text).length >= 1);
    sources.timing.record({ method: 'GET', route: '/x', status: 200, ms: 3 });
    await waitFor(() => events(stream.text).length >= 3);
    expect(stream.text.startsWith('retry: 3000\n\nevent: snapshot\ndata: {')).toBe(true);
    const got = events(stream.text);
    expect(got[0]!.requests.total).toBe(0);
    expect(got.at(-1)!.requests.total).toBe(1);
    expect(got[1]!.at).toBeGreaterThan(got[0]!.at);
  });

  it('cleans up when the client goes away', async () => {
    const { url, streams } = await start();
    const a = await openStream(`${url}/d/api/stream`);
    const b = await openStream(`${url}/d/api/stream`);
    await waitFor(() => events(a.text).length >= 2 && events(b.text).length >= 2);
    expect(await streams()).toBe('perfstack_dashboard_streams 2');
    a.req.destroy();
    await waitFor(async () => (await streams()) === 'perfstack_dashboard_streams 1');
    b.req.destroy();
    await waitFor(async () => (await streams()) === 'perfstack_dashboard_streams 0');
  });

  it('caps concurrent streams with 503 OVERLOADED and Retry-After', async () => {
    const { url, streams } = await start({ maxStreams: 1 });
    const first = await openStream(`${url}/d/api/stream`);
    const refused = await request(`${url}/d/api/stream`);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.json<{ code: string }>().code).toBe('OVERLOADED');
    first.req.destroy();
    await waitFor(async () => (await streams()) === 'perfstack_dashboard_streams 0');
    const again = await openStream(`${url}/d/api/stream`);
    expect(again.res.statusCode).toBe(200);
  });

  it('sends a heartbeat comment', async () => {
    const { url } = await start({ streamInterval: 200, heartbeatInterval: 1000 });
    const stream = await openStream(`${url}/d/api/stream`);
    await waitFor(() => /\n: heartbeat \d+\n\n/.test(stream.text), 4000);
  });

  it('close() ends open streams', async () => {
    const { url } = await start();
    const stream = await openStream(`${url}/d/api/stream`);
    await waitFor(() => events(stream.text).length >= 1);
    await board!.close();
    await waitFor(() => stream.ended);
  });

  it('HEAD gives the headers without opening a stream', async () => {
    const { url, streams } = await start();
    const res = await request(`${url}/d/api/stream`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(await streams()).toBe('perfstack_dashboard_streams 0');
  });
});
