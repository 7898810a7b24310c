/**
 * The page and its assets, read once from the package's `assets/` folder into a fixed
 * in-memory map. A request names an asset by its exact file name and is answered from
 * the map or not at all: no path from the URL ever reaches the filesystem, so `..`,
 * encoded separators and the like have nothing to traverse.
 */
import { readFileSync } from 'node:fs';

/** One asset, ready to send. */
export interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
}

/** The files served under `assets/`, with their types. */
const FILES: Readonly<Record<string, string>> = {
  'app.js': 'text/javascript; charset=utf-8',
  'profiles.js': 'text/javascript; charset=utf-8',
  'settings.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'icon.svg': 'image/svg+xml',
};

let cache: { readonly assets: ReadonlyMap<string, Asset>; readonly page: string } | undefined;

function folder(): URL {
  // `src/assets.ts` and `dist/assets.js` both sit one level below the package root.
  return new URL('../assets/', import.meta.url);
}

function load(): NonNullable<typeof cache> {
  if (cache !== undefined) return cache;
  const base = folder();
  const assets = new Map<string, Asset>();
  for (const [name, contentType] of Object.entries(FILES)) {
    assets.set(name, { body: readFileSync(new URL(name, base)), contentType });
  }
  const page = readFileSync(new URL('index.html', base), 'utf8');
  cache = { assets, page };
  return cache;
}

/** The asset map (loaded on first use, then shared). */
export function loadAssets(): ReadonlyMap<string, Asset> {
  return load().assets;
}

/** Escapes text for an HTML attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The page with this dashboard's values filled in (the CSRF token goes in a `<meta>`
 * tag: the CSP allows no inline script to carry it).
 */
export function renderPage(values: { readonly csrfToken: string; readonly title: string }): Buffer {
  const html = load()
    .page.replace('{{csrfToken}}', escapeHtml(values.csrfToken))
    .replaceAll('{{title}}', escapeHtml(values.title));
  return Buffer.from(html, 'utf8');
}

/** The CSP the dashboard sets on its page when the app set none: scripts, styles and connections from itself only. */
export const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
