/**
 * The module on `@nestjs/platform-fastify`: `perfstack/fastify` registered on Nest's Fastify
 * instance, the decorators' settings given to it through each route's config.
 */
import { PKG } from './options.js';
import type { PerfstackService } from './service.js';

/** Registers the stack on Nest's Fastify instance (before Nest registers its routes). */
export function mountFastify(_instance: unknown, _service: PerfstackService): void {
  throw new Error(`${PKG}: the Fastify adapter is not supported yet`);
}
