/**
 * `PerfstackModule`: puts `performanceStack()` in front of a Nest app, on Express or Fastify.
 *
 * - When the module is instantiated (in `NestFactory.create`, before Nest's body parsers and
 *   routes), on Express: the stack's middleware goes first on the app, then the dashboard,
 *   `/metrics` and `/health`.
 * - When the app initialises (`app.init()`/`app.listen()`), before Nest registers its routes:
 *   the controllers' routes and decorators are read into the route table, and the stack is
 *   built (Express) or `perfstack/fastify` registered with the routes' settings (Fastify).
 * - On `app.close()`: the stack is closed.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type DynamicModule, Global, Inject, Module, type NestModule } from '@nestjs/common';
import { type ApplicationConfig, HttpAdapterHost, ModuleRef, ModulesContainer } from '@nestjs/core';
import type { NextFunction } from '@perfstack/core';
import { registerFastify } from './fastify.js';
import { PERFSTACK_OPTIONS, type PerfstackModuleAsyncOptions, type PerfstackModuleOptions, PKG } from './options.js';
import { scanRoutes } from './routes.js';
import { PerfstackService } from './service.js';

type Handler = (req: IncomingMessage, res: ServerResponse, next: NextFunction) => void;
type ExpressLike = {
  use(...args: unknown[]): unknown;
  get(path: string, handler: Handler): unknown;
};

const DEFAULT_PATHS = { dashboard: '/dashboard', metrics: '/metrics', health: '/health' } as const;

@Global()
@Module({})
export class PerfstackModule implements NestModule {
  readonly #service: PerfstackService;
  readonly #adapters: HttpAdapterHost;
  readonly #modules: ModulesContainer;
  readonly #moduleRef: ModuleRef;
  #adapterType: string | undefined;

  constructor(
    @Inject(PerfstackService) service: PerfstackService,
    @Inject(HttpAdapterHost) adapters: HttpAdapterHost,
    @Inject(ModulesContainer) modules: ModulesContainer,
    @Inject(ModuleRef) moduleRef: ModuleRef,
  ) {
    this.#service = service;
    this.#adapters = adapters;
    this.#modules = modules;
    this.#moduleRef = moduleRef;
    this.#mount();
  }

  /**
   * The module with static options.
   *
   * @param options the preset's options (`performanceStack()` of `perfstack`) and `endpoints`
   * @example \@Module({ imports: [PerfstackModule.forRoot({ redis: process.env.REDIS_URL })] })
   */
  static forRoot(options: PerfstackModuleOptions = {}): DynamicModule {
    return {
      module: PerfstackModule,
      global: true,
      providers: [{ provide: PERFSTACK_OPTIONS, useValue: options }, PerfstackService],
      exports: [PerfstackService],
    };
  }

  /**
   * The module with options from a factory (a `ConfigService`, secrets read at start).
   *
   * @example
   * PerfstackModule.forRootAsync({
   *   imports: [ConfigModule],
   *   inject: [ConfigService],
   *   useFactory: (config: ConfigService) => ({ redis: config.get('REDIS_URL') }),
   * })
   */
  static forRootAsync(options: PerfstackModuleAsyncOptions): DynamicModule {
    if (typeof options?.useFactory !== 'function') {
      throw new TypeError(`${PKG}: PerfstackModule.forRootAsync() needs a "useFactory" function`);
    }
    return {
      module: PerfstackModule,
      global: true,
      imports: [...(options.imports ?? [])],
      providers: [
        {
          provide: PERFSTACK_OPTIONS,
          useFactory: options.useFactory as (...args: unknown[]) => unknown,
          inject: [...(options.inject ?? [])],
        },
        PerfstackService,
      ],
      exports: [PerfstackService],
    };
  }

  /**
   * Nest calls this in `app.init()`, before it registers the routes (and after `main.ts` set
   * the global prefix and versioning): the routes are read, and the stack is built (Express)
   * or `perfstack/fastify` is registered with the routes' settings (Fastify).
   * @internal
   */
  async configure(): Promise<void> {
    if (this.#service.ready || this.#adapterType === undefined) return;
    const adapter = this.#adapters.httpAdapter as unknown as { normalizePath?: (path: string) => string };
    const routes = scanRoutes({
      modules: this.#modules,
      config: applicationConfigOf(this.#moduleRef),
      normalizePath: adapter.normalizePath?.bind(adapter),
    });
    if (this.#adapterType === 'fastify') {
      await registerFastify(this.#adapters.httpAdapter.getInstance(), this.#service, this.#modules, routes);
    } else {
      this.#service.build(routes);
    }
  }

  /** Mounts the stack on the app's HTTP adapter, before Nest's body parsers and routes. */
  #mount(): void {
    const adapter = this.#adapters.httpAdapter;
    if (adapter === undefined || adapter === null) return; // an application context: no HTTP
    this.#adapterType = adapter.getType();
    // Fastify: perfstack/fastify is registered in configure(), when the routes are known.
    if (this.#adapterType === 'fastify') return;
    if (this.#adapterType !== 'express') {
      throw new Error(`${PKG}: the "${this.#adapterType}" HTTP adapter is not supported (Express and Fastify are)`);
    }
    const app = adapter.getInstance() as ExpressLike;
    const service = this.#service;
    app.use(service.middleware());
    if (!service.endpoints) return;
    const paths = { ...DEFAULT_PATHS, ...service.options.paths };
    let dashboard: Handler | undefined;
    let metrics: Handler | undefined;
    let health: Handler | undefined;
    app.use(
      paths.dashboard,
      function perfstackDashboard(req: IncomingMessage, res: ServerResponse, next: NextFunction) {
        if (!service.ready) return next();
        dashboard ??= service.stack.dashboard();
        dashboard(req, res, next);
      },
    );
    app.get(paths.metrics, function perfstackMetrics(req, res, next) {
      if (!service.ready) return next();
      metrics ??= service.stack.metrics();
      metrics(req, res, next);
    });
    app.get(paths.health, function perfstackHealth(req, res, next) {
      if (!service.ready) return next();
      health ??= service.stack.health();
      health(req, res, next);
    });
  }
}

/**
 * The app's `ApplicationConfig` (global prefix, versioning): Nest keeps it on its container,
 * which `ModuleRef` holds. `undefined` if a future Nest moves it (routes are then read
 * without a global prefix).
 */
function applicationConfigOf(moduleRef: ModuleRef): ApplicationConfig | undefined {
  const container = (moduleRef as unknown as { container?: { applicationConfig?: ApplicationConfig } }).container;
  return container?.applicationConfig;
}
