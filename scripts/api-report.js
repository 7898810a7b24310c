#!/usr/bin/env node
/**
 * The public API of every package, one report per entry point, checked in under `api/`
 * (api-extractor's `.api.md` format: every exported name with its declaration).
 *
 *   node scripts/api-report.js           # writes the reports (after `pnpm build`)
 *   node scripts/api-report.js --check   # CI: fails when a report differs from the build
 *
 * A change to a package's exports then shows up as a diff of its report in review, so it is
 * made on purpose: run the script without `--check` and commit the reports with the change.
 * The entry points are read from each package's `exports` (every subpath with `types`).
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';

const root = fileURLToPath(new URL('..', import.meta.url));
const packagesDir = join(root, 'packages');
const reportFolder = join(root, 'api');
const check = process.argv.includes('--check');

/** `[package dir, package.json, subpath, types file]` for every typed entry point. */
function entryPoints() {
  const found = [];
  for (const name of readdirSync(packagesDir).sort()) {
    const dir = join(packagesDir, name);
    let pkg;
    try {
      pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    } catch {
      continue;
    }
    for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
      if (typeof target !== 'object' || target === null || typeof target.types !== 'string') continue;
      found.push({ dir, pkg, subpath, types: join(dir, target.types) });
    }
  }
  return found;
}

/** `@perfstack/core` + `./internal` → `core-internal.api.md`; `perfstack` + `.` → `perfstack.api.md`. */
function reportName(pkgName, subpath) {
  const base = pkgName.replace(/^@perfstack\//, '');
  const sub = subpath === '.' ? '' : `-${subpath.replace(/^\.\//, '').replaceAll('/', '-')}`;
  return `${base}${sub}.api.md`;
}

mkdirSync(reportFolder, { recursive: true });
const temp = mkdtempSync(join(tmpdir(), 'perfstack-api-'));
const expected = new Set();
let failed = 0;
try {
  for (const { dir, pkg, subpath, types } of entryPoints()) {
    const reportFileName = reportName(pkg.name, subpath);
    expected.add(reportFileName);
    const config = ExtractorConfig.prepare({
      configObject: {
        projectFolder: dir,
        mainEntryPointFilePath: types,
        compiler: {
          overrideTsconfig: {
            compilerOptions: {
              target: 'ES2022',
              module: 'NodeNext',
              moduleResolution: 'NodeNext',
              strict: true,
              skipLibCheck: true,
              types: ['node'],
            },
          },
        },
        apiReport: {
          enabled: true,
          reportFileName,
          reportFolder,
          reportTempFolder: temp,
          includeForgottenExports: false,
        },
        docModel: { enabled: false },
        dtsRollup: { enabled: false },
        tsdocMetadata: { enabled: false },
        messages: {
          compilerMessageReporting: { default: { logLevel: 'warning' } },
          extractorMessageReporting: {
            default: { logLevel: 'none' },
            'ae-missing-release-tag': { logLevel: 'none' },
          },
          tsdocMessageReporting: { default: { logLevel: 'none' } },
        },
      },
      configObjectFullPath: join(dir, 'api-extractor.json'),
      packageJsonFullPath: join(dir, 'package.json'),
    });
    const result = Extractor.invoke(config, { localBuild: !check, showVerboseMessages: false });
    if (!result.succeeded || (check && result.apiReportChanged)) {
      failed++;
      console.error(
        `${reportFileName}: ${result.apiReportChanged ? 'the API changed: run `node scripts/api-report.js` and commit api/' : `${result.errorCount} errors`}`,
      );
    } else {
      console.log(`${reportFileName}: ${result.apiReportChanged ? 'updated' : 'unchanged'}`);
    }
  }
  // A report whose entry point is gone.
  for (const file of readdirSync(reportFolder)) {
    if (!file.endsWith('.api.md') || expected.has(file)) continue;
    if (check) {
      failed++;
      console.error(`${file}: no such entry point any more: delete it`);
    } else {
      rmSync(join(reportFolder, file));
      console.log(`${file}: removed`);
    }
  }
} finally {
  rmSync(temp, { recursive: true, force: true });
}
if (failed > 0) process.exit(1);
