/**
 * `memoize()` and `@Memoize()`. The decorator fixtures (fixtures/memoize/) are compiled by
 * tsc, not by the test runner's transform: `standard.ts` as TypeScript 5 standard
 * decorators, `legacy.ts` with `experimentalDecorators` as NestJS projects compile. Both
 * are type-checked by `pnpm typecheck` (`@ts-expect-error` lines included; legacy.ts also
 * with the flag on, fixtures/memoize/tsconfig.legacy.json), then run against the built package.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createCache, type DataCache, defaultDataCache, memoize, setDefaultDataCache } from '@perfstack/cache';
import { silentLogger } from '@perfstack/core';
import ts from 'typescript';
import { afterAll, afterEach, describe, expect, it } from 'vitest';

const fixtures = fileURLToPath(new URL('./fixtures/memoize/', import.meta.url));
const dist = pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href;
const out = mkdtempSync(join(tmpdir(), 'perfstack-memoize-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const caches: DataCache[] = [];
afterEach(async () => {
  setDefaultDataCache(undefined);
  await Promise.all(caches.splice(0).map((c) => c.close()));
});

/** Compiles a fixture with tsc's emitter and imports it (the package import points at dist). */
async function load<T>(name: string, experimentalDecorators: boolean): Promise<T> {
  const source = readFileSync(join(fixtures, `${name}.ts`), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      experimentalDecorators,
    },
  });
  const file = join(out, `${name}.mjs`);
  writeFileSync(file, outputText.replace(/from '@perfstack\/cache'/g, `from '${dist}'`));
  return (await import(pathToFileURL(file).href)) as T;
}

interface UserService {
  loads: number;
  find(id: string): Promise<{ id: string; loads: number }>;
  search(term: string, page: number): Promise<string[]>;
}

describe('@Memoize, TypeScript 5 standard decorators', () => {
  it('caches per key, by the key generator or by class, method and arguments', async () => {
    const mod = await load<{
      Users: { new (): UserService; count(): Promise<number> };
      data: DataCache;
      double: (n: number) => Promise<number>;
    }>('standard', false);
    caches.push(mod.data);
    const users = new mod.Users();
    expect(await users.find('1')).toEqual({ id: '1', loads: 1 });
    expect(await users.find('1')).toEqual({ id: '1', loads: 1 });
    expect(await users.find('2')).toEqual({ id: '2', loads: 2 });
    expect(await mod.data.get('user:1')).toEqual({ id: '1', loads: 1 });
    expect(await users.search('pen', 2)).toEqual(['pen:2']);
    expect(await users.search('pen', 2)).toEqual(['pen:2']);
    expect(users.loads).toBe(3);
    expect(await mod.data.get('Users.search:["pen",2]')).toEqual(['pen:2']);
    expect(await mod.Users.count()).toBe(7);
    expect(await mod.data.get('Users.count:[]')).toBe(7);
    expect(await mod.double(4)).toBe(8);
    expect(await mod.data.get('double:[4]')).toBe(8);
    // tags reach memoized entries
    await mod.data.invalidate({ tags: ['users'] });
    expect(await users.find('1')).toEqual({ id: '1', loads: 4 });
  });
});

describe('@Memoize with experimentalDecorators (NestJS providers)', () => {
  it('caches with the legacy decorator call', async () => {
    const mod = await load<{
      PricesService: new () => { loads: number; price(sku: string): Promise<number> };
      data: DataCache;
    }>('legacy', true);
    caches.push(mod.data);
    const prices = new mod.PricesService();
    expect(await prices.price('abc')).toBe(300);
    expect(await prices.price('abc')).toBe(300);
    expect(prices.loads).toBe(1);
    expect(await mod.data.get('price:abc')).toBe(300);
  });
});

describe('memoize()', () => {
  it('uses the default data cache, which the preset replaces, looked up at call time', async () => {
    let calls = 0;
    const square = memoize(
      async (n: number) => {
        calls++;
        return n * n;
      },
      { key: (n) => `sq:${n}`, ttl: '1m' },
    );
    expect(await square(3)).toBe(9);
    expect(await square(3)).toBe(9);
    expect(calls).toBe(1);
    expect(await defaultDataCache().get('sq:3')).toBe(9);
    const mine = createCache({ logger: silentLogger });
    caches.push(mine);
    setDefaultDataCache(mine);
    expect(await square(3)).toBe(9);
    expect(calls).toBe(2);
    expect(await mine.get('sq:3')).toBe(9);
    await mine.close();
    // a closed default is no longer used
    expect(defaultDataCache()).not.toBe(mine);
  });

  it('rejects what it cannot key', () => {
    expect(() => memoize(1 as never)).toThrow(TypeError);
    const anonymous = [(n: number) => n][0] as (n: number) => number;
    expect(() => memoize(anonymous)).toThrow('needs a "name" or a "key"');
    expect(() => memoize(anonymous, { key: 1 as never })).toThrow(TypeError);
  });
});
