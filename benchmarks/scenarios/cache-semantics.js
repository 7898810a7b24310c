/**
 * @perfstack/cache alone on Express 5, for issue 14's semantics figures. BENCH_CACHE_CASE:
 * - `hit-1`:  GET /api/vary (Vary: Accept-Language) with one variant stored — a hit;
 * - `hit-20`: the same URL with 20 variants stored (warmed before READY) — a hit on the 8th;
 * - `revalidate`: GET /api/validated (`no-cache` + ETag): every request is revalidated, the
 *   app answers 304 before building the body, the cache answers from the stored entry;
 * - `miss`: GET /api/miss (`max-age=0, stale-if-error=60`, no validator): every request is a
 *   full miss — the app builds the body and the cache records and stores it again.
 * All answer the same ~1 KB products JSON; X-Origin-Count counts the app's own answers.
 */
import http from 'node:http';
import { expressApp, nextOriginCount } from '../lib/apps.js';
import { products } from '../lib/fixture.js';
import { requireExports } from '../lib/perfstack.js';

export const VARIANTS = 20;
const { responseCache } = await requireExports('@perfstack/cache', ['responseCache']);
const app = await expressApp({ use: [responseCache()] });
const ETAG = '"products-v1"';
app.get('/api/vary', (_req, res) => {
  res.setHeader('Cache-Control', 'max-age=3600');
  res.setHeader('Vary', 'Accept-Language');
  res.setHeader('X-Origin-Count', nextOriginCount());
  res.json(products);
});
app.get('/api/validated', (req, res) => {
  res.setHeader('Cache-Control', 'no-cache');
  res.setHeader('ETag', ETAG);
  res.setHeader('X-Origin-Count', nextOriginCount());
  if (req.headers['if-none-match'] === ETAG) {
    res.status(304).end();
    return;
  }
  res.json(products);
});
app.get('/api/miss', (_req, res) => {
  res.setHeader('Cache-Control', 'max-age=0, stale-if-error=60');
  res.setHeader('X-Origin-Count', nextOriginCount());
  res.json(products);
});

const variants = process.env.BENCH_CACHE_CASE === 'hit-20' ? VARIANTS : 1;
const server = http.createServer(app);
server.keepAliveTimeout = 65_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', async () => {
  const { port } = server.address();
  // Store the variants first: l7 is the timed one (l0..l19 with 20).
  for (let i = 0; i < variants; i++) {
    const language = variants === 1 ? 'l7' : `l${i}`;
    await new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/api/vary', headers: { 'accept-language': language } }, (res) => {
          res.resume();
          res.on('end', resolve);
        })
        .on('error', reject);
    });
  }
  process.stdout.write(`READY ${port}\n`);
});
const stop = () => {
  server.close();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
