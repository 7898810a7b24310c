/**
 * Starts the NestJS example: `pnpm demo:nestjs` (Express adapter), `ADAPTER=fastify pnpm demo:nestjs`.
 * Stops gracefully on SIGTERM/SIGINT: `app.close()` closes the server and then the stack.
 */
import { createApp } from './app.js';

const port = Number(process.env.PORT ?? 3000);
const adapter = process.env.ADAPTER === 'fastify' ? 'fastify' : 'express';
const { app, perfstack } = await createApp({ adapter });
await app.listen(port, '0.0.0.0');
console.log(
  `perfstack example (NestJS on ${adapter === 'fastify' ? 'Fastify' : 'Express'}) on http://localhost:${port}`,
);
console.log(`  dashboard: http://localhost:${port}/dashboard   metrics: /metrics   health: /health`);
console.log(`  Redis: ${perfstack.stack.redis ? 'shared (REDIS_URL)' : 'none, everything in memory'}`);

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.log(`${signal} received: closing`);
  const force = setTimeout(() => process.exit(1), 10_000);
  force.unref();
  app.close().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
};
process.once('SIGTERM', () => stop('SIGTERM'));
process.once('SIGINT', () => stop('SIGINT'));
