/**
 * Misuse is caught where it is made: bad decorator options when the class is defined, bad
 * module options when the module is made or the app initialises (TypeErrors naming them).
 */
import 'reflect-metadata';
import { Controller, Get, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { describe, expect, it } from 'vitest';
import {
  CacheResponse,
  CircuitBreaker,
  NoCache,
  PERFSTACK_CACHE,
  PerfstackModule,
  PerfstackService,
  RateLimit,
} from '../src/index.js';

describe('decorators', () => {
  it('check their options when the class is defined', () => {
    expect(() => CacheResponse({ ttl: 'soon' })).toThrow(/option "ttl"/);
    expect(() => CacheResponse({ tll: '1m' } as never)).toThrow(/tll/);
    expect(() => CacheResponse({ store: {} } as never)).toThrow(/@CacheResponse\(\) has no "store" option/);
    expect(() => CacheResponse('1m' as never)).toThrow(/@CacheResponse\(\) takes an options object, got string/);
    expect(() => RateLimit(undefined as never)).toThrow(/@RateLimit\(\) needs options/);
    expect(() => RateLimit({ limit: 5, redis: 'redis://x' } as never)).toThrow(/no "redis" option/);
    expect(() => CircuitBreaker([] as never)).toThrow(/takes an options object, got an array/);
  });

  it('record their options on the method, and on the class', () => {
    class Products {
      list() {}
    }
    const descriptor = Object.getOwnPropertyDescriptor(Products.prototype, 'list') as PropertyDescriptor;
    (CacheResponse({ ttl: '5m', tags: ['p'] }) as MethodDecorator)(Products.prototype, 'list', descriptor);
    (NoCache() as ClassDecorator)(Products);
    expect(Reflect.getMetadata(PERFSTACK_CACHE, Products.prototype.list)).toEqual({ ttl: '5m', tags: ['p'] });
    expect(Reflect.getMetadata('perfstack:no-cache', Products)).toBe(true);
    expect(() =>
      (NoCache() as unknown as (t: object, k: string, d: PropertyDescriptor) => void)(Products.prototype, 'x', {
        value: 1,
      }),
    ).toThrow(/decorates controller classes and route methods, not x/);
  });
});

describe('PerfstackModule', () => {
  it('forRootAsync() needs a factory', () => {
    expect(() => PerfstackModule.forRootAsync({} as never)).toThrow(/needs a "useFactory" function/);
  });

  it('refuses a bad module option, and a bad preset option when the app initialises', async () => {
    @Controller('x')
    class X {
      @Get() get() {
        return 'x';
      }
    }
    const make = async (options: object) => {
      @Module({ imports: [PerfstackModule.forRoot(options)], controllers: [X] })
      class M {}
      const app = await NestFactory.create(M, new ExpressAdapter(), { logger: false, abortOnError: false });
      try {
        await app.init();
        return app.get(PerfstackService);
      } finally {
        await app.close();
      }
    };
    await expect(make({ endpoints: 'yes' })).rejects.toThrow(/option "endpoints" must be a boolean, got string/);
    await expect(make({ env: false, cache: 'on' })).rejects.toThrow(/option "cache" must be an options object/);
    const service = await make({ env: false, logger: false });
    expect(service.routes).toEqual([
      {
        method: 'GET',
        path: '/x',
        controller: 'X',
        handler: 'get',
        cache: undefined,
        noCache: false,
        rateLimit: undefined,
        circuitBreaker: undefined,
        skip: false,
      },
    ]);
  });
});
