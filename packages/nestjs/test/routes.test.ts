/**
 * Routes are read with Nest's own path rules — global prefix, URI versioning — so the
 * decorators apply, and metrics are labelled, at the path Nest serves, on both adapters.
 */
import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Controller, Get, type INestApplication, Module, Param, Version, VersioningType } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../../test/helpers/http.js';
import { CacheResponse, NoCache, PerfstackModule, PerfstackService } from '../src/index.js';

@Controller('items')
@CacheResponse({ ttl: '1m' })
class ItemsController {
  @Get(':id')
  @Version('2')
  get(@Param('id') id: string) {
    return { id };
  }

  @Get('live/now')
  @NoCache()
  live() {
    return { live: true };
  }
}

describe.each(['express', 'fastify'] as const)('route patterns on %s', (adapter) => {
  let app: INestApplication;
  let url: string;
  beforeAll(async () => {
    @Module({
      imports: [PerfstackModule.forRoot({ env: false, logger: false, log: { warn() {}, error() {} } })],
      controllers: [ItemsController],
    })
    class M {}
    app = await NestFactory.create(M, adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), {
      logger: false,
    });
    app.setGlobalPrefix('api');
    app.enableVersioning({ type: VersioningType.URI, defaultVersion: '1' });
    await app.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await app.close();
  });

  it('reads the prefixed, versioned paths and applies the decorators there', async () => {
    const routes = app.get(PerfstackService).routes.map((r) => `${r.method} ${r.path}`);
    expect(routes.sort()).toEqual(['GET /api/v1/items/live/now', 'GET /api/v2/items/:id']);
    expect((await request(`${url}/api/v2/items/7`)).headers['x-cache']).toBe('MISS');
    const hit = await request(`${url}/api/v2/items/7`);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(hit.json()).toEqual({ id: '7' });
    const live = await request(`${url}/api/v1/items/live/now`);
    expect(live.status).toBe(200);
    expect(live.headers['x-cache']).toBeUndefined();
    const metrics = await request(`${url}/metrics`);
    expect(metrics.text).toMatch(/http_request_duration_seconds_count\{[^}]*route="\/api\/v2\/items\/:id"[^}]*\} 2/);
    expect(metrics.text).not.toMatch(/route="\/api\/v2\/items\/7"/);
  });
});
