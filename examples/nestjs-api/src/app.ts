/**
 * The NestJS example app: the catalog API of the other examples behind `PerfstackModule`,
 * on Nest's Express adapter (default) or its Fastify adapter. `server.ts` starts it; the
 * tests call `createApp()` directly.
 */
import 'reflect-metadata';
import {
  BadRequestException,
  Body,
  Controller,
  Get,
  HttpCode,
  HttpException,
  type INestApplication,
  Inject,
  type LogLevel,
  Module,
  NotFoundException,
  Param,
  Post,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { type Catalog, createCatalog, exampleStackOptions, invalidProduct } from '@perfstack/example-catalog';
import { CacheResponse, PerfstackModule, type PerfstackModuleOptions, PerfstackService } from '@perfstack/nestjs';

/** The catalog's injection token. */
export const CATALOG = Symbol('catalog');

@Controller()
class RootController {
  @Get()
  info() {
    return { name: 'perfstack example catalog', try: ['/products', '/products/1', '/quote', '/dashboard'] };
  }
}

// Every GET of the controller is cached for 30 s under the tag `products`.
@Controller('products')
@CacheResponse({ ttl: '30s', tags: ['products'] })
class ProductsController {
  constructor(
    @Inject(CATALOG) private readonly catalog: Catalog,
    @Inject(PerfstackService) private readonly perfstack: PerfstackService,
  ) {}

  @Get()
  list() {
    return this.catalog.list();
  }

  @Get(':id')
  async get(@Param('id') id: string) {
    const product = await this.catalog.get(id);
    if (!product) throw new NotFoundException({ error: 'not found' });
    return product;
  }

  @Post()
  @HttpCode(201)
  async create(@Body() body: unknown) {
    const problem = invalidProduct(body);
    if (problem) throw new BadRequestException({ error: problem });
    const product = await this.catalog.create(body as { name: unknown; price: unknown });
    await this.perfstack.invalidate({ tags: ['products'] });
    return product;
  }
}

// A flaky upstream: fails about a third of the time. Cached with stale-if-error, so once a
// good answer was stored, failures and an open breaker are answered from the stale copy.
@Controller('quote')
class QuoteController {
  constructor(@Inject(CATALOG) private readonly catalog: Catalog) {}

  @Get()
  @CacheResponse({ ttl: '5s', staleIfError: '5m' })
  async quote() {
    try {
      return await this.catalog.flakyQuote();
    } catch {
      throw new HttpException({ error: 'upstream failed' }, 502);
    }
  }
}

export interface CreateAppOptions {
  /** `express` (default) or `fastify`. */
  readonly adapter?: 'express' | 'fastify';
  /** Redis URL; empty or absent: everything in memory. */
  readonly redis?: string | undefined;
  /** Options merged over the examples' stack options. */
  readonly stackOptions?: PerfstackModuleOptions;
  /** Options of the simulated catalog (`latencyMs`, `failureRate`). */
  readonly catalogOptions?: { latencyMs?: number; failureRate?: number };
  /** Nest's log levels. @default ['error', 'warn'] */
  readonly logger?: LogLevel[] | false;
}

/** Builds and initialises the app (not listening yet). */
export async function createApp({
  adapter = 'express',
  redis = process.env.REDIS_URL,
  stackOptions = {},
  catalogOptions = {},
  logger = ['error', 'warn'],
}: CreateAppOptions = {}): Promise<{ app: INestApplication; perfstack: PerfstackService; catalog: Catalog }> {
  const catalog = createCatalog(catalogOptions);

  @Module({
    imports: [PerfstackModule.forRoot(exampleStackOptions(redis, stackOptions))],
    controllers: [RootController, ProductsController, QuoteController],
    providers: [{ provide: CATALOG, useValue: catalog }],
  })
  class AppModule {}

  const httpAdapter = adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter();
  const app = await NestFactory.create(AppModule, httpAdapter, { logger });
  await app.init();
  return { app, perfstack: app.get(PerfstackService), catalog };
}
