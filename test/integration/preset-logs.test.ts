/**
 * Logs a production team can keep on, through the whole preset:
 *
 * - the log flood: a client hammered with 429 writes a bounded number of lines, while the
 *   rate-limit metric counts every refusal exactly and the lines' `suppressed` counts add
 *   up to every refusal too;
 * - the shutdown: the README's recipe (SIGTERM → `server.close()` → `stack.close()`) in a
 *   child process, N requests in flight at SIGTERM: every request served has its line;
 * - the stack's own endpoints and the dashboard's polling are not on the log;
 * - a 5xx no error caused carries no stack; an error the app passed on carries its own.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import Koa from 'koa';
import { type PerformanceStack, performanceStack } from 'perfstack';
import { performanceStack as koaStack } from 'perfstack/koa';
import { afterEach, describe, expect, it } from 'vitest';
import { listen, request, type TestServer, waitFor } from '../helpers/http.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const quiet = { warn() {}, error() {} };

type Line = Record<string, unknown> & {
  msg?: string;
  level?: number;
  refused?: string;
  suppressed?: number;
  responseTime?: number;
  req?: { url: string };
  res?: { statusCode: number };
  err?: { type: string; message: string; stack: string };
};

class Lines {
  readonly all: Line[] = [];
  write(line: string): void {
    this.all.push(JSON.parse(line) as Line);
  }
  access(): Line[] {
    return this.all.filter((l) => l.responseTime !== undefined);
  }
}

let server: TestServer | undefined;
let stack: { close(): Promise<void> } | undefined;
let child: ChildProcess | undefined;
afterEach(async () => {
  await server?.close();
  await stack?.close();
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  server = undefined;
  stack = undefined;
  child = undefined;
});

describe('the log flood', () => {
  // The bound is per interval, so four one-second intervals prove it as well as ten seconds
  // at the default minute would (and keep the suite short): a client hammering with 429
  // for 4 s gets at most one line per interval, plus the summary close() writes.
  const HAMMER_MS = 4000;
  const INTERVAL_MS = 1000;

  it('a client hammered with 429 writes at most one line per interval; metrics and suppressed counts are exact', async () => {
    const lines = new Lines();
    const built: PerformanceStack = performanceStack({
      env: false,
      log: quiet,
      logger: { destination: lines, refusalInterval: INTERVAL_MS },
      rateLimit: { limit: 5, window: '1h' },
    });
    stack = built;
    const app = express();
    app.use(built);
    app.get('/metrics', built.metrics());
    app.get('/api', (_req, res) => {
      res.json({ ok: true });
    });
    server = await listen(app);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    const statuses: number[] = [];
    const deadline = Date.now() + HAMMER_MS;
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (Date.now() < deadline) statuses.push((await request(`${server?.url}/api`, { agent })).status);
      }),
    );
    agent.destroy();
    const refused = statuses.filter((s) => s === 429).length;
    expect(statuses.filter((s) => s === 200)).toHaveLength(5);
    expect(refused).toBe(statuses.length - 5);
    expect(refused).toBeGreaterThan(100);

    // every refusal counted in the metric, exactly
    const metrics = (await request(`${server.url}/metrics`)).text;
    expect(metrics).toContain(`perfstack_rate_limit_requests_total{limit="5-in-1hr",outcome="blocked"} ${refused}`);
    expect(metrics).toContain('perfstack_rate_limit_requests_total{limit="5-in-1hr",outcome="allowed"} 5');

    await built.close();
    const refusalLines = lines.access().filter((l) => l.res?.statusCode === 429);
    const summaries = lines.all.filter((l) => l.msg === 'refusals suppressed');
    // at most one line per started interval (the run spans at most HAMMER_MS / INTERVAL_MS + 1
    // of them), and the one summary close() writes for what was left out since the last line
    expect(refusalLines.length).toBeGreaterThanOrEqual(1);
    expect(refusalLines.length).toBeLessThanOrEqual(HAMMER_MS / INTERVAL_MS + 2);
    expect(summaries.length).toBeLessThanOrEqual(1);
    expect(refusalLines.every((l) => l.refused === 'RATE_LIMITED' && l.level === 40)).toBe(true);
    // nothing lost: lines written + lines left out = refusals
    const leftOut = [...refusalLines, ...summaries].reduce((n, l) => n + (l.suppressed ?? 0), 0);
    expect(refusalLines.length + leftOut).toBe(refused);
    // the 200s are all there
    expect(lines.access().filter((l) => l.res?.statusCode === 200)).toHaveLength(5);
  });
});

describe('shutdown with the README recipe', () => {
  it('SIGTERM with N requests in flight: N + served lines in the file, all answered 200, exit 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'perfstack-shutdown-'));
    try {
      const file = join(dir, 'access.log');
      const proc = spawn(process.execPath, [`${root}test/integration/fixtures/shutdown-logs.mjs`, file], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = proc;
      let out = '';
      let err = '';
      proc.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      proc.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
      });
      await waitFor(() => out.includes('"port"'), 15_000);
      const { port } = JSON.parse(out.split('\n')[0] as string) as { port: number };
      const base = `http://127.0.0.1:${port}`;

      const SERVED = 200;
      const IN_FLIGHT = 30;
      for (let i = 0; i < SERVED; i += 20) {
        const batch = await Promise.all(Array.from({ length: 20 }, () => request(`${base}/fast`)));
        expect(batch.every((r) => r.status === 200)).toBe(true);
      }
      const slow = Array.from({ length: IN_FLIGHT }, (_, i) => request(`${base}/slow/${i}`, { timeout: 20_000 }));
      await waitFor(() => (out.match(/ARRIVED/g) ?? []).length === IN_FLIGHT, 15_000);
      const exit = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
      proc.kill('SIGTERM');
      const answers = await Promise.all(slow);
      expect(answers.map((r) => r.status)).toEqual(Array(IN_FLIGHT).fill(200));
      expect(await exit).toBe(0);
      expect(err).toBe('');

      const logged = readFileSync(file, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Line)
        .filter((l) => l.responseTime !== undefined);
      expect(logged.filter((l) => l.req?.url === '/fast')).toHaveLength(SERVED);
      const slowUrls = logged.filter((l) => l.req?.url.startsWith('/slow/')).map((l) => l.req?.url);
      expect(new Set(slowUrls)).toEqual(new Set(Array.from({ length: IN_FLIGHT }, (_, i) => `/slow/${i}`)));
      expect(logged).toHaveLength(SERVED + IN_FLIGHT);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('what is not on the log', () => {
  it("leaves out the stack's endpoints and the dashboard's page, assets and polling, in any case", async () => {
    const lines = new Lines();
    const built = performanceStack({ env: false, log: quiet, logger: { destination: lines } });
    stack = built;
    const app = express();
    app.use(built);
    app.use('/dashboard', built.dashboard());
    app.get('/metrics', built.metrics());
    app.get('/health', built.health());
    app.get('/api', (_req, res) => {
      res.json({ ok: true });
    });
    server = await listen(app);
    const page = await request(`${server.url}/dashboard/`);
    expect(page.status).toBe(200);
    const assets = [...page.text.matchAll(/(?:src|href)="(?:\.\/)?(assets\/[^"]+)"/g)].map((m) => m[1]);
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) expect((await request(`${server.url}/dashboard/${asset}`)).status).toBe(200);
    for (const path of [
      '/dashboard/api/snapshot',
      '/dashboard/api/report?format=json',
      '/Dashboard/api/snapshot',
      '/metrics',
      '/Metrics/',
      '/health',
      '/HEALTH',
    ]) {
      expect((await request(`${server.url}${path}`)).status).toBeLessThan(500);
    }
    await request(`${server.url}/api`);
    await waitFor(() => lines.access().length >= 1);
    await built.close();
    expect(lines.access().map((l) => l.req?.url)).toEqual(['/api']);
  });
});

describe('errors on the line, through the preset', () => {
  it('Express: a 5xx the app chose has no err; next(err) logs its own stack (stack.errorHandler)', async () => {
    const lines = new Lines();
    const built = performanceStack({ env: false, log: quiet, logger: { destination: lines } });
    stack = built;
    const app = express();
    app.use(built);
    app.get('/maintenance', (_req, res) => {
      res.status(503).send('back soon');
    });
    app.get('/fails', (_req, _res, next) => {
      next(new Error('upstream said secret=s3cr3t'));
    });
    app.use(built.errorHandler);
    app.use((_e: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(500).json({ error: 'internal' });
    });
    server = await listen(app);
    expect((await request(`${server.url}/maintenance`)).status).toBe(503);
    expect((await request(`${server.url}/fails`)).status).toBe(500);
    await waitFor(() => lines.access().length >= 2);
    const [maintenance, fails] = lines.access();
    expect(maintenance?.err).toBeUndefined();
    expect(maintenance?.msg).toBe('request completed with status 503');
    expect(fails?.err?.message).toBe('upstream said secret=[REDACTED]');
    expect(fails?.err?.stack.split('\n')[1]).toContain('preset-logs.test.ts');
    expect(JSON.stringify(lines.all)).not.toContain('s3cr3t');
  });

  it("Express: the app's own error handler alone is enough (core gates it and records the error)", async () => {
    const lines = new Lines();
    const built = performanceStack({ env: false, log: quiet, logger: { destination: lines } });
    stack = built;
    const app = express();
    app.use(built);
    app.get('/fails', () => {
      throw new RangeError('out of range token=abc.def.ghi');
    });
    app.use((_e: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(502).json({ error: 'upstream' });
    });
    server = await listen(app);
    expect((await request(`${server.url}/fails`)).status).toBe(502);
    await waitFor(() => lines.access().length >= 1);
    const [line] = lines.access();
    expect(line?.err?.type).toBe('RangeError');
    expect(line?.err?.stack.split('\n')[1]).toContain('preset-logs.test.ts');
    expect(JSON.stringify(lines.all)).not.toContain('abc.def.ghi');
  });

  it('Koa: an error thrown downstream is on the line with its own stack, without any app setup', async () => {
    const lines = new Lines();
    const built = koaStack({ env: false, log: quiet, logger: { destination: lines } });
    stack = built;
    const app = new Koa();
    app.silent = true;
    app.use(built);
    app.use(async (ctx) => {
      if (ctx.path === '/boom') throw new TypeError('koa broke');
      ctx.status = 503;
      ctx.body = 'later';
    });
    server = await listen(app.callback());
    expect((await request(`${server.url}/boom`)).status).toBe(500);
    expect((await request(`${server.url}/later`)).status).toBe(503);
    await waitFor(() => lines.access().length >= 2);
    const byUrl = Object.fromEntries(lines.access().map((l) => [l.req?.url, l]));
    expect(byUrl['/boom']?.err?.type).toBe('TypeError');
    expect(byUrl['/boom']?.err?.stack.split('\n')[1]).toContain('preset-logs.test.ts');
    expect(byUrl['/later']?.err).toBeUndefined();
  });
});
