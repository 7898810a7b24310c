/**
 * @perfstack/nestjs — perfstack for NestJS, on `@nestjs/platform-express` and
 * `@nestjs/platform-fastify`.
 *
 * ```ts
 * \@Module({ imports: [PerfstackModule.forRoot({ redis: process.env.REDIS_URL })], controllers: [Products] })
 * class AppModule {}
 *
 * \@Controller('products')
 * \@CacheResponse({ ttl: '5m', tags: ['products'] })
 * class Products {
 *   constructor(private readonly perfstack: PerfstackService) {}
 *   \@Get(':id') get(\@Param('id') id: string) { ... }
 *   \@Post() \@RateLimit({ limit: 10, window: '1m' })
 *   async create(\@Body() body: NewProduct) { ...; await this.perfstack.invalidate({ tags: ['products'] }); }
 * }
 * ```
 */
export {
  CacheResponse,
  type CacheResponseOptions,
  CircuitBreaker,
  type CircuitBreakerRouteOptions,
  NoCache,
  PERFSTACK_CACHE,
  PERFSTACK_CIRCUIT_BREAKER,
  PERFSTACK_NO_CACHE,
  PERFSTACK_RATE_LIMIT,
  PERFSTACK_SKIP,
  RateLimit,
  type RateLimitRouteOptions,
  SkipPerfstack,
} from './decorators.js';
export { PerfstackModule } from './module.js';
export { PERFSTACK_OPTIONS, type PerfstackModuleAsyncOptions, type PerfstackModuleOptions } from './options.js';
export type { PerfstackRoute } from './routes.js';
export { PerfstackService, type PerfstackStats } from './service.js';
