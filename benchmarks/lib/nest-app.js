/**
 * The scenario app on NestJS 11 (Express adapter): the same three routes as lib/apps.js
 * (GET /api/products, GET /api/cached with its origin counter, POST /api/products), as a
 * controller. Benchmarks are plain JavaScript, so Nest's decorators are applied with
 * `Reflect.decorate` and called directly for parameters, as TypeScript's output does.
 */
import 'reflect-metadata';
import { nextOriginCount, originCount } from './apps.js';
import { BODY_LIMIT, created, products } from './fixture.js';

/**
 * Builds the app.
 * @param {{
 *   imports?: any[], providers?: any[],
 *   cachedRoute?: Function[],   method decorators for GET /api/cached only
 *   setup?: (app: any) => void | Promise<void>,   after create, before init (app.use, enableCors)
 *   bodyLimit?: boolean,   Nest's own JSON parser with the shared limit (the peers' body limit)
 * }} options
 * @returns {Promise<import('node:http').Server>} the initialised app's HTTP server (not listening)
 */
export async function nestApp({ imports = [], providers = [], cachedRoute = [], setup, bodyLimit = false } = {}) {
  const [{ Body, Controller, Get, HttpCode, Module, Post, Res }, { NestFactory }, { ExpressAdapter }] =
    await Promise.all([import('@nestjs/common'), import('@nestjs/core'), import('@nestjs/platform-express')]);

  class ApiController {
    products() {
      return products;
    }
    cached(res) {
      res.setHeader('X-Origin-Count', nextOriginCount());
      return products;
    }
    create(body) {
      return created(body);
    }
    originCount() {
      return { count: originCount() };
    }
  }
  const proto = ApiController.prototype;
  const method = (name, decorators) =>
    Reflect.decorate(decorators, proto, name, Object.getOwnPropertyDescriptor(proto, name));
  method('products', [Get('products')]);
  method('cached', [Get('cached'), ...cachedRoute]);
  Res({ passthrough: true })(proto, 'cached', 0);
  method('create', [Post('products'), HttpCode(201)]);
  // How often GET /api/cached's origin ran: @nestjs/cache-manager replays the body only (not
  // the X-Origin-Count header), so its hit check asks here.
  method('originCount', [Get('origin-count')]);
  Body()(proto, 'create', 0);
  const Api = Reflect.decorate([Controller('api')], ApiController);

  class BenchModule {}
  const AppModule = Reflect.decorate([Module({ imports, providers, controllers: [Api] })], BenchModule);

  const app = await NestFactory.create(AppModule, new ExpressAdapter(), { logger: false, bodyParser: !bodyLimit });
  if (bodyLimit) app.useBodyParser('json', { limit: BODY_LIMIT });
  await setup?.(app);
  await app.init();
  return app.getHttpServer();
}
