/** Summaries, the Markdown tables and the issue's targets, from the per-round figures. */

export function median(values) {
  const sorted = values.filter((v) => v !== undefined && Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const fmtInt = (v) => (v === undefined ? 'n/a' : Math.round(v).toLocaleString('en-US'));
const fmt = (v, digits = 2) => (v === undefined ? 'n/a' : v.toFixed(digits));
const fmtMb = (bytes) => (bytes === undefined ? 'n/a' : (bytes / 1024 / 1024).toFixed(0));

/**
 * Summarises one HTTP scenario's rounds.
 * @param {{ rounds: Array<{ rps: number, p50: number, p99: number, requests: number, cpuMicros?: number, non2xx: number, errors: number }>, peakRss?: number }} result
 */
export function summarize(result) {
  const rps = result.rounds.map((r) => r.rps);
  const cpuPerRequest = result.rounds.map((r) =>
    r.cpuMicros === undefined || r.requests === 0 ? undefined : r.cpuMicros / r.requests,
  );
  const medianRps = median(rps);
  const min = Math.min(...rps);
  const max = Math.max(...rps);
  return {
    rps: medianRps,
    rpsMin: min,
    rpsMax: max,
    spreadPercent: medianRps ? ((max - min) / medianRps) * 100 : undefined,
    p50: median(result.rounds.map((r) => r.p50)),
    p99: median(result.rounds.map((r) => r.p99)),
    cpuMicrosPerRequest: median(cpuPerRequest),
    cpuMin: Math.min(...cpuPerRequest.filter((v) => v !== undefined)),
    cpuMax: Math.max(...cpuPerRequest.filter((v) => v !== undefined)),
    peakRss: result.peakRss,
    foreign: median(result.rounds.map((r) => r.foreign)),
    retries: result.rounds.reduce((sum, r) => sum + (r.retries ?? 0), 0),
    non2xx: result.rounds.reduce((sum, r) => sum + r.non2xx, 0),
    // Answers that were not what the scenario expects (non-2xx, or for a refusal scenario
    // with `expectStatus`, answers that were not refused).
    unexpected: result.rounds.reduce(
      (sum, r) => sum + (result.scenario?.expectStatus === undefined ? r.non2xx : Math.max(0, r.requests - r.non2xx)),
      0,
    ),
    errors: result.rounds.reduce((sum, r) => sum + r.errors, 0),
  };
}

/** Summarises one micro-benchmark's rounds. */
export function summarizeMicro(result) {
  const ops = result.rounds.map((r) => r.opsPerSecond);
  const medianOps = median(ops);
  return {
    opsPerSecond: medianOps,
    opsMin: Math.min(...ops),
    opsMax: Math.max(...ops),
    spreadPercent: medianOps ? ((Math.max(...ops) - Math.min(...ops)) / medianOps) * 100 : undefined,
    nsPerOp: median(result.rounds.map((r) => r.nsPerOp)),
    cpuMicrosPerOp: median(result.rounds.map((r) => r.cpuMicrosPerOp)),
    peakRss: Math.max(...result.rounds.map((r) => r.maxRss ?? 0)) || undefined,
  };
}

/** The Markdown table of HTTP scenarios, ratios to the first measured one. */
export function httpTable(rows) {
  const measured = rows.filter((row) => row.summary && row.scenario.kind === 'http');
  const base = measured[0];
  const lines = [
    `| scenario | req/s (median) | min–max | spread | p50 ms | p99 ms | CPU µs/req | CPU min–max | CPU ratio | peak RSS MB | other load | ratio to ${base ? base.scenario.name : 'first'} |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of measured) {
    const s = row.summary;
    const ratio = base?.summary.rps ? s.rps / base.summary.rps : undefined;
    // CPU ratio: base CPU per request over this one's — the same "times faster" reading as
    // the req/s ratio, but from CPU time, which other load on a shared machine disturbs less.
    const cpuRatio =
      base?.summary.cpuMicrosPerRequest && s.cpuMicrosPerRequest
        ? base.summary.cpuMicrosPerRequest / s.cpuMicrosPerRequest
        : undefined;
    const expected = row.scenario.expectStatus;
    const warn = s.unexpected || s.errors ? ` ⚠ ${s.unexpected} not ${expected ?? '2xx'}, ${s.errors} errors` : '';
    lines.push(
      `| ${row.scenario.name}${warn} | ${fmtInt(s.rps)} | ${fmtInt(s.rpsMin)}–${fmtInt(s.rpsMax)} | ${fmt(s.spreadPercent, 1)}% | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.cpuMicrosPerRequest, 1)} | ${fmt(s.cpuMin, 1)}–${fmt(s.cpuMax, 1)} | ${cpuRatio === undefined ? 'n/a' : `${cpuRatio.toFixed(2)}x`} | ${fmtMb(s.peakRss)} | ${s.foreign === undefined ? 'n/a' : `${(s.foreign * 100).toFixed(0)}%`} | ${ratio === undefined ? 'n/a' : `${ratio.toFixed(2)}x`} |`,
    );
  }
  return lines.join('\n');
}

/** The Markdown table of micro-benchmarks. */
export function microTable(rows) {
  const measured = rows.filter((row) => row.summary && row.scenario.kind === 'micro');
  if (measured.length === 0) return '';
  const base = measured[0];
  const lines = [
    `| micro-benchmark | ops/s (median) | min–max | spread | ns/op | CPU µs/op | peak RSS MB | ratio to ${base.scenario.name} |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of measured) {
    const s = row.summary;
    lines.push(
      `| ${row.scenario.name} | ${fmtInt(s.opsPerSecond)} | ${fmtInt(s.opsMin)}–${fmtInt(s.opsMax)} | ${fmt(s.spreadPercent, 1)}% | ${fmt(s.nsPerOp, 0)} | ${fmt(s.cpuMicrosPerOp, 2)} | ${fmtMb(s.peakRss)} | ${(s.opsPerSecond / base.summary.opsPerSecond).toFixed(2)}x |`,
    );
  }
  return lines.join('\n');
}

/**
 * The issue's targets, evaluated for whichever scenario pairs this run measured.
 * @returns {Array<{ target: string, figure: string, met: boolean }>}
 */
export function evaluateTargets(rows) {
  const by = new Map(rows.filter((row) => row.summary).map((row) => [row.scenario.name, row.summary]));
  const targets = [];
  const ratio = (label, a, b, atLeast) => {
    const x = by.get(a);
    const y = by.get(b);
    if (!x?.rps || !y?.rps) return;
    const value = x.rps / y.rps;
    const cpu =
      x.cpuMicrosPerRequest && y.cpuMicrosPerRequest ? y.cpuMicrosPerRequest / x.cpuMicrosPerRequest : undefined;
    targets.push({
      target: `${label}: ${a} ≥ ${atLeast}x ${b}`,
      figure: `${value.toFixed(2)}x (${fmtInt(x.rps)} vs ${fmtInt(y.rps)} req/s)`,
      cpuFigure:
        cpu === undefined
          ? 'n/a'
          : `${cpu.toFixed(2)}x (${fmt(x.cpuMicrosPerRequest, 1)} vs ${fmt(y.cpuMicrosPerRequest, 1)} µs/req)`,
      met: value >= atLeast,
      metByCpu: cpu === undefined ? undefined : cpu >= atLeast,
    });
  };
  ratio('Full stack on Express, uncached', 'stack-express', 'peer-stack', 1.5);
  ratio('Full stack on Express, uncached', 'stack-express', 'express-bare', 0.6);
  ratio('Full stack on node:http', 'stack-node', 'peer-stack', 3);
  ratio('Full stack on node:http', 'stack-node', 'fastify-stack', 1);
  ratio('Cache hits through the full stack', 'stack-express-hit', 'peer-apicache', 1.2);
  ratio('Cache hits through the full stack', 'stack-express-hit', 'express-bare', 1.0);
  const stack = by.get('stack-express');
  const bare = by.get('express-bare');
  if (stack?.p99 && bare?.p99) {
    const value = stack.p99 / bare.p99;
    targets.push({
      target: 'p99 of the full stack (Express) ≤ 1.2x bare Express p99',
      figure: `${value.toFixed(2)}x (${fmt(stack.p99)} ms vs ${fmt(bare.p99)} ms)`,
      cpuFigure: '—',
      met: value <= 1.2,
    });
  }
  return targets;
}

export function targetsTable(targets) {
  if (targets.length === 0) return '';
  return [
    '| target | req/s figure | met (req/s) | same ratio from CPU µs/req | met (CPU) |',
    '|---|---:|:---:|---:|:---:|',
    ...targets.map(
      (t) =>
        `| ${t.target} | ${t.figure} | ${t.met ? 'yes' : '**MISSED**'} | ${t.cpuFigure} | ${t.metByCpu === undefined ? '—' : t.metByCpu ? 'yes' : '**MISSED**'} |`,
    ),
  ].join('\n');
}
