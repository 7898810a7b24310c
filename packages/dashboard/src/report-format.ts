/**
 * The performance report as a document a team can attach to a ticket:
 * `GET /api/report?format=md|json|html`. JSON is the report object itself; Markdown and
 * HTML render the same fields (score, grade, the figures the rules used, every rule and
 * every recommendation) and nothing else, so the three formats never disagree. The HTML is
 * self-contained: no script, no external asset, inline styles only.
 */
import { HttpProblemError } from '@perfstack/core';
import type { PerformanceReport, ReportInputs } from './report.js';

/** The formats `?format=` accepts. */
export type ReportFormat = 'json' | 'md' | 'html';

/** The formats with their media types. */
export const REPORT_MEDIA_TYPES: Readonly<Record<ReportFormat, string>> = Object.freeze({
  json: 'application/json; charset=utf-8',
  md: 'text/markdown; charset=utf-8',
  html: 'text/html; charset=utf-8',
});

/** Reads `format` from a query string: absent → json; anything else than the three → 400. */
export function reportFormatOf(query: URLSearchParams): ReportFormat {
  const values = query.getAll('format');
  if (values.length === 0) return 'json';
  const value = values[0] as string;
  if (values.length === 1 && (value === 'json' || value === 'md' || value === 'html')) return value;
  throw new HttpProblemError({
    code: 'BAD_REQUEST',
    detail: `format must be one of json, md, html (got ${values.map((v) => JSON.stringify(v)).join(', ')}).`,
  });
}

/** The body of the report in `format`. */
export function renderReport(report: PerformanceReport, format: ReportFormat): string {
  if (format === 'md') return reportToMarkdown(report);
  if (format === 'html') return reportToHtml(report);
  return JSON.stringify(report);
}

const percent = (share: number): string => `${(share * 100).toFixed(2)}%`;
const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

/** The figures of `inputs` as [label, value] rows, in the order both renderings use. */
function figureRows(inputs: ReportInputs): Array<[string, string]> {
  const rows: Array<[string, string]> = [
    ['Window', inputs.window ?? 'none yet'],
    ['Requests', String(inputs.requests)],
    ['Requests/s', inputs.rps.toFixed(2)],
    ['Latency p95', `${inputs.latencyP95Ms.toFixed(1)} ms`],
    ['Latency p99', `${inputs.latencyP99Ms.toFixed(1)} ms (target ${inputs.latencyTargetMs} ms)`],
    ['Error rate', percent(inputs.errorRate)],
  ];
  if (inputs.cache) {
    const { hits, misses, hitRatio } = inputs.cache;
    rows.push(['Cache hit ratio', `${percent(hitRatio)} (${hits} hits, ${misses} misses)`]);
  }
  if (inputs.rateLimit) {
    const { allowed, blocked, blockedShare } = inputs.rateLimit;
    rows.push(['Rate limited', `${percent(blockedShare)} (${blocked} of ${allowed + blocked})`]);
  }
  if (inputs.breakers) {
    const { total, open, halfOpen, overloaded } = inputs.breakers;
    rows.push([
      'Circuit breakers',
      `${open} open, ${halfOpen} half-open of ${total}${overloaded ? '; shedding load' : ''}`,
    ]);
  }
  rows.push(
    ['Event-loop delay p99', `${inputs.eventLoopDelayP99Ms.toFixed(1)} ms`],
    ['Heap', `${mib(inputs.heapUsedBytes)} of ${mib(inputs.heapLimitBytes)} (${percent(inputs.heapShare)})`],
    ['Leak alerts', String(inputs.leakAlerts)],
  );
  return rows;
}

/** Escapes a table cell: pipes and line breaks would break the row. */
function mdCell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** The report as Markdown (`text/markdown`). */
export function reportToMarkdown(report: PerformanceReport): string {
  const lines = [
    '# perfstack performance report',
    '',
    `**Score ${report.score}, grade ${report.grade}**, generated ${report.generatedAt}.`,
    '',
    '## Figures',
    '',
    '| figure | value |',
    '|---|---|',
    ...figureRows(report.inputs).map(([label, value]) => `| ${mdCell(label)} | ${mdCell(value)} |`),
    '',
    '## Rules',
    '',
    '| rule | weight | points | explanation |',
    '|---|---:|---:|---|',
    ...report.rules.map((r) => `| ${mdCell(r.name)} | ${r.weight} | ${r.points ?? 'n/a'} | ${mdCell(r.explanation)} |`),
    '',
    '## Recommendations',
    '',
  ];
  if (report.recommendations.length === 0) lines.push('None.');
  else {
    lines.push('| # | layer | route | finding | action | expected gain |', '|---:|---|---|---|---|---|');
    report.recommendations.forEach((r, i) => {
      lines.push(
        `| ${i + 1} | ${mdCell(r.layer)} | ${mdCell(r.route ?? '—')} | ${mdCell(r.finding)} | ${mdCell(r.action)} | ${mdCell(r.expectedGain)} |`,
      );
    });
  }
  lines.push('');
  return lines.join('\n');
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string);
}

const row = (cells: readonly string[], tag = 'td'): string =>
  `<tr>${cells.map((c) => `<${tag}>${escapeHtml(c)}</${tag}>`).join('')}</tr>`;

/** The report as one self-contained HTML page (`text/html`). */
export function reportToHtml(report: PerformanceReport): string {
  const recommendations =
    report.recommendations.length === 0
      ? '<p>None.</p>'
      : `<table>${row(['#', 'layer', 'route', 'finding', 'action', 'expected gain'], 'th')}${report.recommendations
          .map((r, i) => row([String(i + 1), r.layer, r.route ?? '—', r.finding, r.action, r.expectedGain]))
          .join('')}</table>`;
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    `<title>perfstack report — ${escapeHtml(report.grade)} ${report.score}</title>`,
    '<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}</style>',
    '</head><body>',
    '<h1>perfstack performance report</h1>',
    `<p><strong>Score ${report.score}, grade ${escapeHtml(report.grade)}</strong>, generated ${escapeHtml(report.generatedAt)}.</p>`,
    '<h2>Figures</h2>',
    `<table>${row(['figure', 'value'], 'th')}${figureRows(report.inputs)
      .map((cells) => row(cells))
      .join('')}</table>`,
    '<h2>Rules</h2>',
    `<table>${row(['rule', 'weight', 'points', 'explanation'], 'th')}${report.rules
      .map((r) => row([r.name, String(r.weight), r.points === null ? 'n/a' : String(r.points), r.explanation]))
      .join('')}</table>`,
    '<h2>Recommendations</h2>',
    recommendations,
    '</body></html>',
    '',
  ].join('\n');
}

/** The Content-Security-Policy of the HTML report: inline styles, nothing else. */
export const REPORT_HTML_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";
