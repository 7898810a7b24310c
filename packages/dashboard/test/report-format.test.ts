/**
 * The report as a document (`GET /api/report?format=md|json|html`) and on a schedule
 * (`reportSchedule` to a file and a webhook), over real HTTP with the fake layers.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dashboard } from '@perfstack/dashboard';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer } from '../../../test/helpers/http.js';
import type { PerformanceReport } from '../src/report.js';
import { reportToHtml, reportToMarkdown } from '../src/report-format.js';
import { buildApp } from './app.js';
import { fakeSources } from './fakes.js';

let server: TestServer | undefined;
let built: ReturnType<typeof buildApp> | undefined;
const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  await built?.board.close();
  await server?.close();
  for (const cleanup of cleanups.splice(0)) await cleanup();
  built = undefined;
  server = undefined;
});

/** An app whose report has a failing rule and a recommendation for a route with `|` and `<`. */
async function start() {
  built = buildApp({ leakWatch: false });
  const { sources } = built;
  for (let i = 0; i < 40; i++) {
    sources.timing.record({ method: 'GET', route: '/a|b/<script>', status: 200, ms: 900 });
  }
  server = await listen(http.createServer(built.app));
}

const reportUrl = (query = '') => `${server!.url}/dashboard/api/report${query}`;

describe('GET /api/report?format=', () => {
  it('json (and no format) is the report object; md and html render the same report', async () => {
    await start();
    const plain = await request(reportUrl());
    const json = await request(reportUrl('?format=json'));
    expect(json.status).toBe(200);
    expect(json.headers['content-type']).toBe('application/json; charset=utf-8');
    const a = plain.json<PerformanceReport>();
    const b = json.json<PerformanceReport>();
    expect({ ...b, generatedAt: '' }).toEqual({ ...a, generatedAt: '' });
    expect(b.recommendations.length).toBeGreaterThan(0);

    const md = await request(reportUrl('?format=md'));
    expect(md.status).toBe(200);
    expect(md.headers['content-type']).toBe('text/markdown; charset=utf-8');
    expect(md.headers['cache-control']).toBe('no-store');
    const generatedAt = /generated (\S+)\.$/m.exec(md.text)?.[1];
    expect(generatedAt).toBeDefined();
    // Same report (the clock aside) → byte for byte what the renderer makes of the JSON.
    expect(md.text).toBe(reportToMarkdown({ ...b, generatedAt: generatedAt as string }));
    expect(md.text.startsWith(`# perfstack performance report\n\n**Score ${b.score}, grade ${b.grade}**`)).toBe(true);
    // The route's `|` is escaped so the table row keeps its columns.
    expect(md.text).toContain('/a\\|b/<script>');
    expect(md.text).not.toContain('/a|b/');

    const html = await request(reportUrl('?format=html'));
    expect(html.status).toBe(200);
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.headers['content-security-policy']).toBe(
      "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
    );
    const htmlAt = /generated ([^<]+)\.<\/p>/.exec(html.text)?.[1];
    expect(html.text).toBe(reportToHtml({ ...b, generatedAt: htmlAt as string }));
    expect(html.text).toContain('/a|b/&lt;script&gt;');
    expect(html.text).not.toContain('<script');
  });

  it('HEAD gets the headers of the GET and no body', async () => {
    await start();
    const res = await request(reportUrl('?format=md'), { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/markdown; charset=utf-8');
    expect(Number(res.headers['content-length'])).toBeGreaterThan(100);
    expect(res.body.length).toBe(0);
  });

  it.each([
    ['?format=xml', '"xml"'],
    ['?format=', '""'],
    ['?format=md&format=html', '"md", "html"'],
    ['?format=MD', '"MD"'],
  ])('%s → 400 problem+json naming the value', async (query, named) => {
    await start();
    const res = await request(reportUrl(query));
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    const body = res.json<{ type: string; status: number; detail: string }>();
    expect(body.type).toBe('urn:perfstack:problem:bad-request');
    expect(body.status).toBe(400);
    expect(body.detail).toBe(`format must be one of json, md, html (got ${named}).`);
  });
});

describe('reportSchedule', () => {
  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'perfstack-report-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  async function webhook(status: number) {
    const received: Array<{ method: string; type: string | undefined; body: string }> = [];
    const hook = await listen(
      http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          received.push({
            method: req.method ?? '',
            type: req.headers['content-type'],
            body: Buffer.concat(chunks).toString(),
          });
          res.statusCode = status;
          res.end();
        });
      }),
    );
    cleanups.push(() => hook.close());
    return { url: `${hook.url}/hooks/secret-path`, received };
  }

  it('deliverReport() writes the file whole and POSTs the same body to the webhook', async () => {
    const file = join(tempDir(), 'report.md');
    const hook = await webhook(204);
    const warnings: string[] = [];
    const board = dashboard({
      sources: fakeSources(),
      leakWatch: false,
      reportSchedule: { interval: '1h', format: 'md', file, webhook: hook.url },
      logger: { warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) },
    });
    cleanups.push(() => board.close());
    expect(await board.deliverReport()).toEqual({ file: 'written', webhook: 204 });
    const written = readFileSync(file, 'utf8');
    expect(written.startsWith('# perfstack performance report\n')).toBe(true);
    expect(hook.received).toEqual([{ method: 'POST', type: 'text/markdown; charset=utf-8', body: written }]);
    expect(warnings).toEqual([]);
  });

  it('runs on its interval, in the chosen format', async () => {
    const file = join(tempDir(), 'report.json');
    const board = dashboard({
      sources: fakeSources(),
      leakWatch: false,
      reportSchedule: { interval: '1s', format: 'json', file },
    });
    cleanups.push(() => board.close());
    let text: string | undefined;
    for (let i = 0; i < 100 && text === undefined; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        text = undefined;
      }
    }
    expect(text).toBeDefined();
    const parsed = JSON.parse(text as string) as PerformanceReport;
    expect(parsed.version).toBe(1);
    expect(parsed.grade).toMatch(/^[ABCDF]$/);
  });

  it('a failing webhook or file is logged once (origin only, never the secret path) and the schedule goes on', async () => {
    const hook = await webhook(500);
    const warnings: string[] = [];
    const board = dashboard({
      sources: fakeSources(),
      leakWatch: false,
      reportSchedule: { webhook: hook.url, file: join(tempDir(), 'missing-dir', 'report.md') },
      logger: { warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) },
    });
    cleanups.push(() => board.close());
    expect(await board.deliverReport()).toEqual({ file: 'failed', webhook: 500 });
    expect(await board.deliverReport()).toEqual({ file: 'failed', webhook: 500 });
    expect(hook.received.length).toBe(2);
    expect(warnings.length).toBe(2);
    expect(warnings.some((w) => w.startsWith('DASHBOARD_REPORT_WEBHOOK_STATUS: '))).toBe(true);
    expect(warnings.some((w) => w.startsWith('DASHBOARD_REPORT_FILE_FAILED: '))).toBe(true);
    expect(warnings.join('\n')).not.toContain('secret-path');
  });

  it('an unreachable webhook resolves failed, not rejected', async () => {
    const hook = await webhook(200);
    const url = hook.url;
    await cleanups.pop()?.(); // close the hook server: nothing listens there now
    const warnings: string[] = [];
    const board = dashboard({
      sources: fakeSources(),
      leakWatch: false,
      reportSchedule: { webhook: url },
      logger: { warn: (m: string) => warnings.push(m), error: (m: string) => warnings.push(m) },
    });
    cleanups.push(() => board.close());
    expect(await board.deliverReport()).toEqual({ webhook: 'failed' });
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toMatch(
      /^DASHBOARD_REPORT_WEBHOOK_FAILED: could not POST the scheduled report to http:\/\/127\.0\.0\.1:\d+$/,
    );
  });

  it('without reportSchedule, deliverReport() resolves undefined', async () => {
    const board = dashboard({ sources: fakeSources(), leakWatch: false });
    cleanups.push(() => board.close());
    expect(await board.deliverReport()).toBeUndefined();
  });

  it.each([
    [{ file: '/tmp/x', format: 'pdf' }, TypeError, /reportSchedule\.format/],
    [{}, TypeError, /reportSchedule/],
    [{ webhook: 'ftp://example.com/x' }, TypeError, /reportSchedule\.webhook/],
    [{ webhook: 'not a url' }, TypeError, /reportSchedule\.webhook/],
    [{ file: '' }, TypeError, /reportSchedule\.file/],
    [{ file: '/tmp/x', interval: 10 }, RangeError, /reportSchedule\.interval/],
    [{ file: '/tmp/x', every: '1h' }, TypeError, /every/],
  ])('rejects reportSchedule %j', (reportSchedule, type, message) => {
    expect(() =>
      dashboard({ sources: fakeSources(), leakWatch: false, reportSchedule: reportSchedule as never }),
    ).toThrow(type);
    expect(() =>
      dashboard({ sources: fakeSources(), leakWatch: false, reportSchedule: reportSchedule as never }),
    ).toThrow(message);
  });
});
