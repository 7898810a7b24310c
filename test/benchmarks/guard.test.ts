/**
 * `pnpm bench:guard` reads its pairs, committed ratios and margins from benchmarks/RESULTS.md;
 * the timing itself is never run in the test suite (house style 15).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readGuardFigures } from '../../benchmarks/guard.js';

type Figure = { stack: string; baseline: string; committed: number; margin: number };

describe('bench:guard figures', () => {
  it('parses the table between the markers, and nothing outside them', () => {
    const text = [
      '| stack-express | express-bare | 9.99x | 10% |',
      '<!-- bench-guard:begin -->',
      '| stack | baseline | committed ratio | margin |',
      '| --- | --- | ---: | ---: |',
      '| `stack-express` | express-bare | 1.06x | 35% |',
      '| stack-express-429 | stack-express | 1.30x | 20% |',
      '<!-- bench-guard:end -->',
    ].join('\n');
    expect(readGuardFigures(text)).toEqual([
      { stack: 'stack-express', baseline: 'express-bare', committed: 1.06, margin: 0.35 },
      { stack: 'stack-express-429', baseline: 'stack-express', committed: 1.3, margin: 0.2 },
    ]);
    expect(readGuardFigures('no markers')).toEqual([]);
  });

  it('finds figures in benchmarks/RESULTS.md for scenarios the registry knows', async () => {
    const results = readFileSync(fileURLToPath(new URL('../../benchmarks/RESULTS.md', import.meta.url)), 'utf8');
    const figures = readGuardFigures(results) as Figure[];
    expect(figures.length).toBeGreaterThan(0);
    const { allScenarios } = await import('../../benchmarks/lib/registry.js');
    const names = new Set((allScenarios as Array<{ name: string }>).map((s) => s.name));
    for (const f of figures) {
      expect(names.has(f.stack), f.stack).toBe(true);
      expect(names.has(f.baseline), f.baseline).toBe(true);
      expect(f.committed).toBeGreaterThan(0);
      expect(f.margin).toBeGreaterThan(0);
      expect(f.margin).toBeLessThan(1);
    }
  });
});
