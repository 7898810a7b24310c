import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const pkg = (name: string) => fileURLToPath(new URL(`./packages/${name}/src/index.ts`, import.meta.url));

// Tests import packages by their public names; these aliases point them at the sources
// so a test run needs no build. Child-process tests and examples use the built output.
export default defineConfig({
  resolve: {
    alias: [
      {
        find: /^@perfstack\/(core|cache|size-limit|rate-limit|logger|circuit-breaker|timing|dashboard)$/,
        replacement: fileURLToPath(new URL('./packages/$1/src/index.ts', import.meta.url)),
      },
      {
        find: /^perfstack\/koa$/,
        replacement: fileURLToPath(new URL('./packages/perfstack/src/koa.ts', import.meta.url)),
      },
      {
        find: /^perfstack\/fastify$/,
        replacement: fileURLToPath(new URL('./packages/perfstack/src/fastify.ts', import.meta.url)),
      },
      {
        find: /^perfstack\/node$/,
        replacement: fileURLToPath(new URL('./packages/perfstack/src/node.ts', import.meta.url)),
      },
      { find: /^perfstack$/, replacement: pkg('perfstack') },
      { find: /^@perfstack\/nestjs$/, replacement: pkg('nestjs') },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Three forks on the CI's two cores: a fresh-clone run used 0.85 of a core on average (most
    // of the suite waits on real timers, processes and sockets), so a third fork shortens it.
    maxWorkers: 3,
    reporters: ['default'],
  },
});
