/**
 * Reads a V8 .cpuprofile (from `node --cpu-prof`) and names the hot spots: self time per
 * function, as a share of the samples the process was busy (idle excluded).
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

/**
 * @param {string} file a .cpuprofile
 * @param {number} [top] how many functions to list
 * @returns {{ busySamples: number, rows: Array<{ name: string, where: string, share: number }> }}
 */
export function hotSpots(file, top = 15) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const counts = new Map();
  for (const id of profile.samples) counts.set(id, (counts.get(id) ?? 0) + 1);
  const totals = new Map();
  const packages = new Map();
  let busy = 0;
  for (const [id, count] of counts) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame;
    if (functionName === '(idle)') continue;
    busy += count;
    const where = url ? `${shorten(url)}:${lineNumber + 1}` : '';
    const key = `${functionName || '(anonymous)'}\u0000${where}`;
    totals.set(key, (totals.get(key) ?? 0) + count);
    const owner = ownerOf(url, functionName);
    packages.set(owner, (packages.get(owner) ?? 0) + count);
  }
  const byPackage = [...packages.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([name, count]) => ({ name, share: busy ? count / busy : 0 }));
  const rows = [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([key, count]) => {
      const [name, where] = key.split('\u0000');
      return { name, where, share: busy ? count / busy : 0 };
    });
  return { busySamples: busy, rows, byPackage };
}

/** Who a sampled function belongs to: an npm package, a perfstack package, node core, V8. */
function ownerOf(url, functionName) {
  if (!url) return functionName.startsWith('(') ? functionName : '(native: writev, JSON, ...)';
  if (url.startsWith('node:')) return 'node core';
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = path.slice(nm + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  const pkg = /\/packages\/([^/]+)\//.exec(path);
  if (pkg) return pkg[1] === 'perfstack' ? 'perfstack' : `@perfstack/${pkg[1]}`;
  if (path.includes('/benchmarks/')) return 'benchmark app';
  return path;
}

function shorten(url) {
  const path = url.startsWith('file://') ? new URL(url).pathname : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm !== -1) return path.slice(nm + '/node_modules/'.length).replace(/^\.pnpm\/[^/]+\/node_modules\//, '');
  return path.startsWith('/') ? relative(process.cwd(), path) : path;
}

/** A Markdown table of a profile's hot spots. */
export function hotSpotsTable(name, file, top) {
  const { busySamples, rows, byPackage } = hotSpots(file, top);
  return [
    `#### ${name} — self time, share of ${busySamples} busy samples`,
    '',
    `By owner: ${byPackage
      .slice(0, 12)
      .map((p) => `${p.name} ${(p.share * 100).toFixed(1)}%`)
      .join(', ')}`,
    '',
    '| function | where | share |',
    '|---|---|---:|',
    ...rows.map((row) => `| \`${row.name}\` | ${row.where} | ${(row.share * 100).toFixed(1)}% |`),
  ].join('\n');
}
