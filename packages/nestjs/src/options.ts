/**
 * Options of `PerfstackModule.forRoot()` / `forRootAsync()`: the preset's options
 * (`performanceStack()` of `perfstack`), plus where the module mounts its endpoints.
 */
import type { FactoryProvider, ModuleMetadata } from '@nestjs/common';
import type { PerformanceStackOptions } from 'perfstack';

/** Options of {@link PerfstackModule.forRoot}. Every one is optional. */
export interface PerfstackModuleOptions extends PerformanceStackOptions {
  /**
   * Mount the dashboard, `/metrics` and `/health` at the preset's `paths` on the app's
   * HTTP adapter (before the app's routes). `false` leaves them out.
   * @default true
   */
  readonly endpoints?: boolean;
}

/** Options of {@link PerfstackModule.forRootAsync}. */
export interface PerfstackModuleAsyncOptions {
  /** Modules whose providers the factory injects (a `ConfigModule`). @default [] */
  readonly imports?: ModuleMetadata['imports'];
  /** Providers passed to `useFactory`, in order. @default [] */
  readonly inject?: FactoryProvider['inject'];
  /** Makes the module's options (may be async). */
  readonly useFactory: (...args: never[]) => PerfstackModuleOptions | Promise<PerfstackModuleOptions>;
}

/** The token of the resolved module options. */
export const PERFSTACK_OPTIONS = Symbol.for('perfstack.nestjs.options');

export const PKG = '@perfstack/nestjs';

/** Checks the module-only options and splits them from the preset's. */
export function splitOptions(options: PerfstackModuleOptions | undefined): {
  readonly stack: PerformanceStackOptions;
  readonly endpoints: boolean;
} {
  if (options === undefined || options === null) return { stack: {}, endpoints: true };
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${PKG}: PerfstackModule options must be an object, got ${typeof options}`);
  }
  const { endpoints, ...stack } = options;
  if (endpoints !== undefined && typeof endpoints !== 'boolean') {
    throw new TypeError(`${PKG}: option "endpoints" must be a boolean, got ${typeof endpoints}`);
  }
  return { stack, endpoints: endpoints ?? true };
}
