#!/usr/bin/env node
/**
 * `pnpm bench:guard`: a short interleaved run of the stack scenarios and their baselines,
 * failing when a ratio falls more than its margin below the figure committed in
 * benchmarks/RESULTS.md ("Guard figures"). Ratios only, never absolute times: a ratio is
 * the baseline's CPU µs per request over the stack's (how many times cheaper the stack
 * is), which other load on a shared machine moves far less than req/s.
 *
 *   node benchmarks/guard.js                 # build first: pnpm bench:guard does
 *   node benchmarks/guard.js --rounds 5 --duration 4
 *   node benchmarks/guard.js --print         # the committed figures and margins, nothing run
 *
 * Exit 0: every ratio within its margin; 1: a ratio below it (or a scenario failed its
 * checks); 2: bad options or no guard figures in RESULTS.md.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url));
const RUN = fileURLToPath(new URL('./run.js', import.meta.url));
const BEGIN = '<!-- bench-guard:begin -->';
const END = '<!-- bench-guard:end -->';

/**
 * The rows of the "Guard figures" table between the markers in RESULTS.md:
 * `| stack | baseline | committed ratio | margin |`, e.g. `| stack-express | express-bare | 1.06x | 30% |`.
 * @returns {Array<{ stack: string, baseline: string, committed: number, margin: number }>}
 */
export function readGuardFigures(text) {
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  if (start === -1 || end === -1 || end < start) return [];
  const rows = [];
  for (const line of text.slice(start + BEGIN.length, end).split('\n')) {
    const cells = line
      .split('|')
      .map((c) => c.trim())
      .filter((_c, i, all) => i > 0 && i < all.length - 1);
    if (cells.length < 4 || !/^[\d.]+x$/.test(cells[2] ?? '')) continue;
    const [stack, baseline, ratio, margin] = cells;
    rows.push({
      stack: stack.replace(/`/g, ''),
      baseline: baseline.replace(/`/g, ''),
      committed: Number.parseFloat(ratio),
      margin: Number.parseFloat(margin) / 100,
    });
  }
  return rows;
}

function main() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        rounds: { type: 'string', default: '3' },
        duration: { type: 'string', default: '3' },
        warmup: { type: 'string', default: '2' },
        print: { type: 'boolean', default: false },
        help: { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    process.stderr.write(`${error.message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write('node benchmarks/guard.js [--rounds 3] [--duration 3] [--warmup 2] [--print]\n');
    return 0;
  }
  const figures = readGuardFigures(readFileSync(RESULTS, 'utf8'));
  if (figures.length === 0) {
    process.stderr.write(`no guard figures between ${BEGIN} and ${END} in ${RESULTS}\n`);
    return 2;
  }
  if (values.print) {
    for (const f of figures) {
      process.stdout.write(
        `${f.stack} / ${f.baseline}: committed ${f.committed.toFixed(2)}x, fails below ${(f.committed * (1 - f.margin)).toFixed(2)}x\n`,
      );
    }
    return 0;
  }
  // Every scenario once, interleaved, each stack right after its baseline.
  const names = [];
  for (const f of figures) for (const name of [f.baseline, f.stack]) if (!names.includes(name)) names.push(name);
  const dir = mkdtempSync(join(tmpdir(), 'perfstack-guard-'));
  const jsonFile = join(dir, 'guard.json');
  try {
    const run = spawnSync(
      process.execPath,
      [
        RUN,
        '--scenarios',
        names.join(','),
        '--rounds',
        values.rounds,
        '--duration',
        values.duration,
        '--warmup',
        values.warmup,
        '--retries',
        '1',
        '--json',
        jsonFile,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    if (run.status !== 0) {
      process.stderr.write(`bench:guard: run.js exited ${run.status}: a scenario failed its checks\n`);
      return 1;
    }
    const result = JSON.parse(readFileSync(jsonFile, 'utf8'));
    const cpu = new Map(result.scenarios.map((s) => [s.name, s.summary?.cpuMicrosPerRequest]));
    const lines = [
      '| stack | baseline | committed | floor | measured (CPU µs/req) | result |',
      '|---|---|---:|---:|---:|:---:|',
    ];
    let failed = 0;
    for (const f of figures) {
      const base = cpu.get(f.baseline);
      const stack = cpu.get(f.stack);
      const floor = f.committed * (1 - f.margin);
      if (!base || !stack) {
        failed++;
        lines.push(
          `| ${f.stack} | ${f.baseline} | ${f.committed.toFixed(2)}x | ${floor.toFixed(2)}x | no figure | FAIL |`,
        );
        continue;
      }
      const ratio = base / stack;
      const ok = ratio >= floor;
      if (!ok) failed++;
      lines.push(
        `| ${f.stack} | ${f.baseline} | ${f.committed.toFixed(2)}x | ${floor.toFixed(2)}x | ${ratio.toFixed(2)}x (${base.toFixed(1)} vs ${stack.toFixed(1)}) | ${ok ? 'ok' : 'FAIL'} |`,
      );
    }
    process.stdout.write(`${lines.join('\n')}\n\n`);
    process.stdout.write(
      failed === 0
        ? 'bench:guard: every ratio within its margin\n'
        : `bench:guard: ${failed} ratio(s) below the floor\n`,
    );
    return failed === 0 ? 0 : 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main();
