#!/usr/bin/env node
/**
 * Checks every publishable package the way its users will get it: packs it with `pnpm pack`
 * (so `workspace:*` becomes a real version, as on publish), then, on the tarball,
 *
 * - publint in strict mode (packaging errors: exports, files, types, module format);
 * - Are the Types Wrong? (`attw`) with the `esm-only` profile: every entry point's types
 *   resolve under node16/nodenext and bundler resolution (CommonJS is not supported: the
 *   packages are ESM-only, as their READMEs say);
 * - no build info (`.tsbuildinfo`) in the tarball.
 *
 * Run after `pnpm build`: `pnpm check:packages` (also in .ci/run). Exits 1 on any problem.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const packagesDir = join(root, 'packages');
const attw = join(root, 'node_modules', '.bin', 'attw');
const publintBin = join(root, 'node_modules', '.bin', 'publint');

/** The packages that get published: every `packages/*` that is not private. */
function publishable() {
  const found = [];
  for (const name of readdirSync(packagesDir).sort()) {
    const dir = join(packagesDir, name);
    let pkg;
    try {
      pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    } catch {
      continue;
    }
    if (!pkg.private) found.push({ dir, pkg });
  }
  return found;
}

/** Packs `dir` into `dest` with pnpm; returns the tarball's path. */
function pack(dir, dest) {
  const out = execFileSync('pnpm', ['pack', '--pack-destination', dest], { cwd: dir, encoding: 'utf8' });
  const tarball = out
    .trim()
    .split('\n')
    .map((line) => line.trim())
    .findLast((line) => line.endsWith('.tgz'));
  if (tarball === undefined) throw new Error(`pnpm pack printed no tarball for ${dir}:\n${out}`);
  return tarball;
}

/** The file names in a tarball (without the leading `package/`). */
function listTarball(tarball) {
  return execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map((name) => name.replace(/^package\//, ''));
}

const dest = mkdtempSync(join(tmpdir(), 'perfstack-pack-'));
const failures = [];
try {
  for (const { dir, pkg } of publishable()) {
    console.log(`\n== ${pkg.name}`);
    const tarball = pack(dir, dest);
    const files = listTarball(tarball);
    console.log(`packed ${files.length} files`);

    const buildInfo = files.filter((name) => name.endsWith('.tsbuildinfo'));
    if (buildInfo.length > 0) {
      failures.push(`${pkg.name}: the tarball ships build info (${buildInfo.join(', ')})`);
      console.log(`build info in the tarball: ${buildInfo.join(', ')}`);
    }

    try {
      execFileSync(publintBin, ['--strict', tarball], { stdio: 'inherit' });
    } catch {
      failures.push(`${pkg.name}: publint --strict reported problems`);
    }

    try {
      execFileSync(attw, [tarball, '--profile', 'esm-only', '--format', 'table-flipped', '--no-emoji', '--no-color'], {
        stdio: 'inherit',
      });
    } catch {
      failures.push(`${pkg.name}: attw (esm-only) reported problems`);
    }
  }
} finally {
  rmSync(dest, { recursive: true, force: true });
}

if (failures.length > 0) {
  console.error(`\n${failures.length} problem(s):\n- ${failures.join('\n- ')}`);
  process.exit(1);
}
console.log('\nevery package: publint --strict, attw --profile esm-only and no build info: ok');
