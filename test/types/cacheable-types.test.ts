/**
 * `@Cacheable()` on methods typed with Express's `Request`/`Response` (issue 17, item 3):
 * test/types/cacheable.ts is compiled by TypeScript as a user's build compiles it (against
 * the built `perfstack` package's declarations, standard decorators, strict), then run.
 *
 * - it compiles with no diagnostic at all (before the fix: TS1241 and TS1270 on each method);
 * - without its `@ts-expect-error` lines, exactly the two misuses fail (TS1241, TS1270);
 * - compiled to JavaScript and mounted on Express, the decorated methods cache: MISS, then HIT.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { listen, request } from '../helpers/http.js';

const dir = fileURLToPath(new URL('.', import.meta.url));
const fixture = `${dir}cacheable.ts`;

function compile(source: string) {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    `${dir}tsconfig.json`,
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (parsed === undefined) throw new Error('test/types/tsconfig.json could not be read');
  const host = ts.createCompilerHost(parsed.options);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === fixture ? source : readFile(name));
  const program = ts.createProgram([fixture], parsed.options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => ({
    code: d.code,
    line: d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0,
  }));
}

const out = `${dir}.out`;
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('@Cacheable() with Express types', () => {
  const source = readFileSync(fixture, 'utf8');

  it('compiles the fixture with no diagnostic', () => {
    expect(compile(source)).toEqual([]);
  });

  it('still refuses methods that do not take a request and a response (TS1241, TS1270)', () => {
    const lines = source.split('\n');
    const expected = lines.flatMap((line, i) => (line.trimStart().startsWith('// @ts-expect-error') ? [i + 2] : []));
    expect(expected).toHaveLength(2);
    const stripped = lines.map((line) => (line.trimStart().startsWith('// @ts-expect-error') ? '' : line)).join('\n');
    const diagnostics = compile(stripped);
    // TS1241 (the decorator's signature does not fit the method) and TS1270 (nor its result).
    expect(diagnostics.map((d) => d.code)).toEqual([1241, 1270, 1241, 1270]);
    expect(diagnostics.map((d) => d.line)).toEqual(expected.flatMap((line) => [line, line]));
  });

  it('runs: the decorated methods, mounted on Express, answer MISS then HIT', async () => {
    const js = ts.transpileModule(source, {
      compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022 },
    }).outputText;
    expect(js).toContain('__esDecorate');
    mkdirSync(out, { recursive: true });
    const file = `${out}/cacheable.mjs`;
    writeFileSync(file, js);
    const { app } = (await import(/* @vite-ignore */ pathToFileURL(file).href)) as {
      app: import('node:http').RequestListener;
    };
    const server = await listen(app);
    try {
      const miss = await request(`${server.url}/products`);
      expect(miss.status).toBe(200);
      expect(miss.headers['x-cache']).toBe('MISS');
      expect(miss.json()).toEqual([{ id: '1', name: 'Espresso machine' }]);
      const hit = await request(`${server.url}/products`);
      expect(hit.headers['x-cache']).toBe('HIT');
      expect(hit.text).toBe(miss.text);
      expect((await request(`${server.url}/products/1`)).headers['x-cache']).toBe('MISS');
      expect((await request(`${server.url}/products/1`)).headers['x-cache']).toBe('HIT');
      const quote = await request(`${server.url}/quote`);
      expect(quote.status).toBe(200);
      expect(quote.json()).toEqual({ rate: 1 });
      expect(quote.headers['x-cache']).toBe('MISS');
    } finally {
      await server.close();
    }
  });
});
