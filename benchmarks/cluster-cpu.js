#!/usr/bin/env node
/**
 * Reads a `run.js --json` file and prints, for the node:cluster scenarios (`unpinned`), where
 * the machine's CPU went in each round: the primary (`cpuMicros`), the workers
 * (`workersCpuMicros`), the load generator (`loadCpuMicros`, wrk on the same two cores) and
 * the rest (other processes, the kernel's loopback work), as µs per request and as a share of
 * the machine (cores × elapsed). Medians over the rounds, then min–max.
 *
 *   node benchmarks/cluster-cpu.js <file.json> [baseline scenario]
 */
import { readFileSync } from 'node:fs';

const [file, baselineName] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: node benchmarks/cluster-cpu.js <run.json> [baseline scenario]\n');
  process.exit(2);
}
const run = JSON.parse(readFileSync(file, 'utf8'));
const cores = run.cpus ?? 2;

const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmt = (n, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const spread = (values, digits = 0) => `${fmt(Math.min(...values), digits)}–${fmt(Math.max(...values), digits)}`;

const rows = run.scenarios.filter((s) => s.status === 'ok' && s.rounds?.some((r) => r.workersCpuMicros !== undefined));
const baseline = rows.find((s) => s.name === (baselineName ?? rows[0]?.name));
const baseRps = baseline === undefined ? undefined : median(baseline.rounds.map((r) => r.rps));
process.stdout.write(
  '| scenario | req/s (median) | min–max | ratio | primary µs/req | workers µs/req | wrk µs/req | primary % of machine | workers % | wrk % | rest % |\n',
);
process.stdout.write('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n');
for (const s of rows) {
  const rounds = s.rounds.filter((r) => r.workersCpuMicros !== undefined && r.loadCpuMicros !== undefined);
  const rps = rounds.map((r) => r.rps);
  const per = (field) => rounds.map((r) => r[field] / r.requests);
  const share = (field) => rounds.map((r) => (100 * r[field]) / (cores * r.elapsedMicros));
  const rest = rounds.map(
    (r) => 100 - (100 * (r.cpuMicros + r.workersCpuMicros + r.loadCpuMicros)) / (cores * r.elapsedMicros),
  );
  const ratio = baseRps === undefined ? '' : `${(median(rps) / baseRps).toFixed(2)}x`;
  process.stdout.write(
    `| ${s.name} | ${fmt(median(rps))} | ${spread(rps)} | ${ratio} | ${fmt(median(per('cpuMicros')), 1)} | ${fmt(median(per('workersCpuMicros')), 1)} | ${fmt(median(per('loadCpuMicros')), 1)} | ${fmt(median(share('cpuMicros')), 1)} | ${fmt(median(share('workersCpuMicros')), 1)} | ${fmt(median(share('loadCpuMicros')), 1)} | ${fmt(median(rest), 1)} |\n`,
  );
}
