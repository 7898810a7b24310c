/**
 * Transparency on Express 4 and 5: the app of `express-app.ts` answers the same status,
 * headers (but for the documented additions) and bytes with `performanceStack()` in front,
 * at its defaults, as without it. See `harness.ts` for what "documented" covers.
 */
import express5 from 'express';
import express4 from 'express4';
import { performanceStack } from 'perfstack';
import { afterEach, describe, expect, it } from 'vitest';
import { buildExpressApp, expressRows } from './express-app.js';
import { compareApps, type RunningApp, serve } from './harness.js';

const running: RunningApp[] = [];
afterEach(async () => {
  for (const app of running.splice(0)) await app.close();
});

/** The preset at its defaults; only the log goes nowhere (no stdout in tests) and the shell's env is ignored. */
const defaults = () => performanceStack({ env: false, logger: { destination: { write() {} } } });

describe.each([
  ['Express 5', express5, 5 as const],
  ['Express 4', express4 as unknown as typeof express5, 4 as const],
])('%s', (_name, express, version) => {
  it(`answers every exchange (${expressRows(version).length}) exactly as without the preset`, async () => {
    const bare = await serve(buildExpressApp(express, version));
    running.push(bare);
    const stack = defaults();
    const stacked = await serve(
      buildExpressApp(express, version, (app) => app.use(stack)),
      () => stack.close(),
    );
    running.push(stacked);
    expect(await compareApps(bare, stacked, expressRows(version))).toEqual([]);
  });
});
