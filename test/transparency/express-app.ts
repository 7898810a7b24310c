/**
 * An Express app doing what real Express apps do, written once for Express 4 and 5, and
 * the exchanges that exercise it. Nothing in it depends on time or randomness, so two
 * instances answer the same bytes.
 */
import { readFile } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type express5 from 'express';
import type { NextFunction, Request, Response } from 'express';
import multer from 'multer';
import type { Exchange } from './harness.js';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));

type ExpressFactory = typeof express5;

/** A tiny view engine: `{{name}}` → `options.name`. */
function tplEngine(path: string, options: object, callback: (e: unknown, rendered?: string) => void): void {
  readFile(path, 'utf8', (error, text) => {
    if (error) return callback(error);
    const values = options as Record<string, unknown>;
    callback(
      null,
      text.replace(/\{\{(\w+)\}\}/g, (_m, key: string) => String(values[key] ?? '')),
    );
  });
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Builds the app; `front` (the stack, or nothing) is mounted first. */
export function buildExpressApp(express: ExpressFactory, version: 4 | 5, front?: (app: express5.Express) => void) {
  const app = express();
  front?.(app);
  app.engine('tpl', tplEngine);
  app.set('views', join(FIXTURES, 'views'));
  app.set('view engine', 'tpl');
  app.set('json spaces', 2);
  app.set('trust proxy', 'loopback');

  // files: sendFile, download, ranges, conditional requests, HEAD
  app.get('/files/report', (_req, res, next) => {
    res.sendFile(join(FIXTURES, 'report.bin'), (error) => error && next(error));
  });
  app.get('/files/notes', (_req, res, next) => {
    res.sendFile('notes.txt', { root: FIXTURES, headers: { 'X-Doc': 'notes' } }, (error) => error && next(error));
  });
  app.get('/files/download', (_req, res, next) => {
    res.download(join(FIXTURES, 'notes.txt'), 'my notes.txt', (error) => error && next(error));
  });
  app.get('/files/missing', (_req, res, next) => {
    res.sendFile(join(FIXTURES, 'nope.bin'), (error) => error && next(error));
  });

  // redirects
  app.get('/old', (_req, res) => {
    res.redirect('/new');
  });
  app.get('/moved', (_req, res) => {
    res.redirect(301, 'https://example.org/elsewhere?q=1');
  });
  app.get('/new', (_req, res) => {
    res.send('new place');
  });

  // streaming with backpressure
  app.get('/stream', (_req, res) => {
    res.setHeader('Content-Type', 'application/octet-stream');
    const chunk = Buffer.alloc(16 * 1024);
    let sent = 0;
    const total = 128;
    const pump = () => {
      while (sent < total) {
        chunk.fill(sent % 251);
        sent++;
        if (!res.write(chunk)) {
          res.once('drain', pump);
          return;
        }
      }
      res.end();
    };
    pump();
  });
  app.get('/chunked', (_req, res) => {
    res.type('text');
    res.write('one\n');
    setImmediate(() => {
      res.write('two\n');
      res.end('three\n');
    });
  });

  // content negotiation
  app.get('/format', (_req, res) => {
    res.format({
      'text/plain': () => res.send('plain'),
      'text/html': () => res.send('<p>html</p>'),
      'application/json': () => res.json({ format: 'json' }),
    });
  });

  // json settings (json spaces on the app; a sub-app with strong ETags and no spaces)
  app.get('/json', (_req, res) => {
    res.json({ name: 'widget', tags: ['a', 'b'], nested: { ok: true } });
  });
  const strong = express();
  strong.set('etag', 'strong');
  strong.get('/json', (_req, res) => {
    res.json({ strong: true, list: [1, 2, 3] });
  });
  strong.get('/jsonp', (_req, res) => {
    res.jsonp({ padded: true });
  });
  app.use('/strong', strong);

  // trust proxy: hostname, ip, protocol
  app.get('/whoami', (req, res) => {
    res.json({ ip: req.ip, ips: req.ips, hostname: req.hostname, protocol: req.protocol, secure: req.secure });
  });

  // routers and sub-apps at paths, app.param
  const items = express.Router({ mergeParams: true });
  items.get('/', (req, res) => {
    res.json({ shop: (req.params as Record<string, string>).shop, items: [] });
  });
  items.get('/:item', (req, res) => {
    res.json({ shop: (req.params as Record<string, string>).shop, item: req.params.item, base: req.baseUrl });
  });
  app.use('/shops/:shop/items', items);
  const admin = express();
  admin.get('/panel', (req, res) => {
    res.json({ mountpath: admin.mountpath, originalUrl: req.originalUrl, url: req.url });
  });
  app.use('/admin', admin);
  app.param('user', (req, _res, next, id: string) => {
    (req as Request & { user?: unknown }).user = { id, name: `user-${id}` };
    next();
  });
  app.get('/users/:user', (req, res) => {
    res.json((req as Request & { user?: unknown }).user);
  });

  // case-sensitive and strict routing, in a sub-app with those settings
  const sensitive = express();
  sensitive.set('case sensitive routing', true);
  sensitive.set('strict routing', true);
  sensitive.get('/Exact/', (_req, res) => {
    res.send('exact with slash');
  });
  sensitive.get('/exact', (_req, res) => {
    res.send('exact lower');
  });
  app.use('/sensitive', sensitive);

  // errors: next(err), thrown, async
  app.get('/errors/next', (_req, _res, next) => {
    next(new HttpError(418, 'short and stout'));
  });
  app.get('/errors/thrown', () => {
    throw new Error('thrown synchronously');
  });
  app.get('/errors/async-wrapped', (req, res, next) => {
    (async () => {
      await Promise.resolve();
      if (req.query.fail !== undefined) throw new HttpError(409, 'async conflict');
      res.json({ async: true });
    })().catch(next);
  });
  if (version === 5) {
    app.get('/errors/async-native', async () => {
      await Promise.resolve();
      throw new HttpError(422, 'rejected promise');
    });
  }

  // res.locals and views
  app.use('/views', (_req, res, next) => {
    res.locals.theme = 'dark';
    next();
  });
  app.get('/views/page', (_req, res) => {
    res.render('page', { name: 'Ada', count: 3 });
  });
  app.get('/views/missing', (_req, res) => {
    res.render('nope');
  });

  // cookies
  app.get('/cookies/set', (_req, res) => {
    res.cookie('session', 'abc123', { httpOnly: true, path: '/', sameSite: 'lax' });
    res.cookie('prefs', JSON.stringify({ lang: 'en' }), { maxAge: 3_600_000, path: '/cookies' });
    res.json({ set: 2 });
  });
  app.get('/cookies/clear', (_req, res) => {
    res.clearCookie('session', { path: '/' });
    res.end();
  });
  app.get('/cookies/echo', (req, res) => {
    res.json({ cookie: req.headers.cookie ?? null });
  });

  // static files
  app.use('/static', express.static(join(FIXTURES, 'public'), { maxAge: '1h' }));
  app.use('/static-nocache', express.static(join(FIXTURES, 'public'), { etag: false, lastModified: true }));

  // body parsers
  app.post('/forms/urlencoded', express.urlencoded({ extended: false }), (req, res) => {
    res.json({ body: req.body });
  });
  app.post('/forms/raw', express.raw({ type: 'application/octet-stream' }), (req, res) => {
    res.json({ length: (req.body as Buffer).length, first: (req.body as Buffer)[0] });
  });
  app.post('/forms/text', express.text(), (req, res) => {
    res.type('text').send(String(req.body).toUpperCase());
  });
  app.post('/forms/json', express.json(), (req, res) => {
    res.status(201).json({ received: req.body });
  });
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: 64 * 1024 } });
  app.post('/upload', upload.single('file'), (req, res) => {
    const file = (req as Request & { file?: { originalname: string; size: number; mimetype: string } }).file;
    res.json({ field: req.body.title, name: file?.originalname, size: file?.size, type: file?.mimetype });
  });

  // status codes and methods
  app.get('/status/204', (_req, res) => {
    res.status(204).end();
  });
  app.get('/status/500', (_req, res) => {
    res.status(500).send('app chose 500');
  });
  app.get('/status/503', (_req, res) => {
    res.status(503).set('Retry-After', '120').json({ maintenance: true });
  });
  app.all('/method', (req, res) => {
    res.json({ method: req.method });
  });
  app.get('/cached', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=60').json({ cacheable: true });
  });
  app.get('/vary', (req, res) => {
    res.vary('Accept-Language').send(req.headers['accept-language'] === 'fr' ? 'bonjour' : 'hello');
  });

  // error middleware, last
  app.use((error: HttpError, _req: Request, res: Response, _next: NextFunction) => {
    const status = typeof error.status === 'number' ? error.status : 500;
    res.status(status).json({ error: error.message, status });
  });
  return app;
}

const multipart = (() => {
  const boundary = '----perfstack-transparency';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nQuarterly\r\n`),
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="q.csv"\r\nContent-Type: text/csv\r\n\r\n`,
    ),
    Buffer.from('a,b,c\n1,2,3\n'.repeat(200)),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, type: `multipart/form-data; boundary=${boundary}` };
})();

/** The exchanges, in order (some use what an earlier one captured). */
export function expressRows(version: 4 | 5): Exchange[] {
  const rows: Exchange[] = [
    {
      name: 'sendFile',
      path: '/files/report',
      expectStatus: 200,
      capture: { reportEtag: 'etag', reportModified: 'last-modified' },
    },
    { name: 'sendFile HEAD', method: 'HEAD', path: '/files/report', expectStatus: 200 },
    { name: 'sendFile range', path: '/files/report', headers: { range: 'bytes=100-1099' }, expectStatus: 206 },
    { name: 'sendFile suffix range', path: '/files/report', headers: { range: 'bytes=-500' }, expectStatus: 206 },
    {
      name: 'sendFile multi range (send answers 200)',
      path: '/files/report',
      headers: { range: 'bytes=0-9,20-29' },
      expectStatus: 200,
    },
    {
      name: 'sendFile bad range',
      path: '/files/report',
      headers: { range: 'bytes=99999-' },
      expectStatus: 416,
      knownDeviation: 'the cache revalidates the stored file without the Range and answers the full 200',
    },
    {
      name: 'sendFile If-None-Match',
      path: '/files/report',
      headers: (c) => ({ 'if-none-match': c.reportEtag as string }),
      expectStatus: 304,
    },
    {
      name: 'sendFile If-Modified-Since',
      path: '/files/report',
      headers: (c) => ({ 'if-modified-since': c.reportModified as string }),
      expectStatus: 304,
    },
    {
      name: 'sendFile If-Range match',
      path: '/files/report',
      headers: (c) => ({ range: 'bytes=0-99', 'if-range': c.reportEtag as string }),
      expectStatus: 206,
      knownDeviation: "the cache compares If-Range strongly (RFC 9110 §13.1.5), send's weak ETag never matches: 200",
    },
    {
      name: 'sendFile If-Range stale',
      path: '/files/report',
      headers: { range: 'bytes=0-99', 'if-range': '"stale"' },
      expectStatus: 200,
    },
    { name: 'sendFile root + headers', path: '/files/notes', expectStatus: 200 },
    { name: 'download', path: '/files/download', expectStatus: 200 },
    { name: 'download HEAD', method: 'HEAD', path: '/files/download', expectStatus: 200 },
    { name: 'sendFile missing → error handler', path: '/files/missing', expectStatus: 404 },
    { name: 'redirect', path: '/old', expectStatus: 302 },
    { name: 'redirect HEAD', method: 'HEAD', path: '/old', expectStatus: 302 },
    { name: 'redirect 301 absolute', path: '/moved', expectStatus: 301 },
    { name: 'redirect target', path: '/new', expectStatus: 200 },
    { name: 'stream with backpressure', path: '/stream', expectStatus: 200 },
    { name: 'chunked writes', path: '/chunked', expectStatus: 200 },
    { name: 'format json', path: '/format', headers: { accept: 'application/json' }, expectStatus: 200 },
    { name: 'format html', path: '/format', headers: { accept: 'text/html' }, expectStatus: 200 },
    { name: 'format default', path: '/format', expectStatus: 200 },
    { name: 'format 406', path: '/format', headers: { accept: 'image/png' }, expectStatus: 406 },
    { name: 'json spaces', path: '/json', expectStatus: 200, capture: { jsonEtag: 'etag' } },
    { name: 'json 304', path: '/json', headers: (c) => ({ 'if-none-match': c.jsonEtag as string }), expectStatus: 304 },
    { name: 'json HEAD', method: 'HEAD', path: '/json', expectStatus: 200 },
    { name: 'strong etag', path: '/strong/json', expectStatus: 200, capture: { strongEtag: 'etag' } },
    {
      name: 'strong etag 304',
      path: '/strong/json',
      headers: (c) => ({ 'if-none-match': c.strongEtag as string }),
      expectStatus: 304,
    },
    { name: 'jsonp', path: '/strong/jsonp?callback=cb', expectStatus: 200 },
    {
      name: 'trust proxy',
      path: '/whoami',
      headers: {
        'x-forwarded-for': '203.0.113.9, 127.0.0.1',
        'x-forwarded-host': 'shop.example',
        'x-forwarded-proto': 'https',
      },
      expectStatus: 200,
    },
    { name: 'no proxy headers', path: '/whoami', headers: { host: 'direct.example:8080' }, expectStatus: 200 },
    { name: 'router at param path', path: '/shops/7/items/42', expectStatus: 200 },
    { name: 'router root', path: '/shops/7/items', expectStatus: 200 },
    { name: 'router trailing slash', path: '/shops/7/items/', expectStatus: 200 },
    { name: 'sub-app', path: '/admin/panel?x=1', expectStatus: 200 },
    { name: 'sub-app case', path: '/ADMIN/Panel', expectStatus: 200 },
    { name: 'app.param', path: '/users/99', expectStatus: 200 },
    { name: 'strict + case: exact', path: '/sensitive/Exact/', expectStatus: 200 },
    { name: 'strict: no slash', path: '/sensitive/Exact', expectStatus: 404 },
    { name: 'case sensitive: lower', path: '/sensitive/exact', expectStatus: 200 },
    { name: 'case sensitive: other case', path: '/sensitive/EXACT', expectStatus: 404 },
    { name: 'strict: extra slash', path: '/sensitive/exact/', expectStatus: 404 },
    { name: 'next(err) with status', path: '/errors/next', expectStatus: 418 },
    { name: 'thrown error', path: '/errors/thrown', expectStatus: 500 },
    { name: 'async ok', path: '/errors/async-wrapped', expectStatus: 200 },
    { name: 'async rejected (wrapped)', path: '/errors/async-wrapped?fail', expectStatus: 409 },
    { name: 'res.locals + view', path: '/views/page', expectStatus: 200 },
    { name: 'missing view', path: '/views/missing', expectStatus: 500 },
    { name: 'cookies set', path: '/cookies/set', expectStatus: 200 },
    { name: 'cookies clear', path: '/cookies/clear', expectStatus: 200 },
    {
      name: 'cookies echo',
      path: '/cookies/echo',
      headers: { cookie: 'session=abc123; prefs=%7B%7D' },
      expectStatus: 200,
    },
    {
      name: 'static file',
      path: '/static/css/site.css',
      expectStatus: 200,
      capture: { cssEtag: 'etag', cssModified: 'last-modified' },
    },
    {
      name: 'static 304 etag',
      path: '/static/css/site.css',
      headers: (c) => ({ 'if-none-match': c.cssEtag as string }),
      expectStatus: 304,
    },
    {
      name: 'static 304 date',
      path: '/static/css/site.css',
      headers: (c) => ({ 'if-modified-since': c.cssModified as string }),
      expectStatus: 304,
    },
    { name: 'static range', path: '/static/css/site.css', headers: { range: 'bytes=0-3' }, expectStatus: 206 },
    { name: 'static index', path: '/static/', expectStatus: 200 },
    { name: 'static directory redirect', path: '/static/css', expectStatus: 301 },
    { name: 'static HEAD', method: 'HEAD', path: '/static/index.html', expectStatus: 200 },
    { name: 'static miss → next', path: '/static/none.js', expectStatus: 404 },
    { name: 'static without etag', path: '/static-nocache/css/site.css', expectStatus: 200 },
    {
      name: 'urlencoded',
      method: 'POST',
      path: '/forms/urlencoded',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'a=1&b=two&b=2&empty=',
      expectStatus: 200,
    },
    {
      name: 'raw',
      method: 'POST',
      path: '/forms/raw',
      headers: { 'content-type': 'application/octet-stream' },
      body: Buffer.from([9, 8, 7, 6, 5]),
      expectStatus: 200,
    },
    {
      name: 'text',
      method: 'POST',
      path: '/forms/text',
      headers: { 'content-type': 'text/plain; charset=utf-8' },
      body: 'héllo wörld',
      expectStatus: 200,
    },
    {
      name: 'json body',
      method: 'POST',
      path: '/forms/json',
      headers: { 'content-type': 'application/json' },
      body: '{"n":1,"s":"x"}',
      expectStatus: 201,
    },
    {
      name: 'multer upload',
      method: 'POST',
      path: '/upload',
      headers: { 'content-type': multipart.type },
      body: multipart.body,
      expectStatus: 200,
    },
    { name: '204', path: '/status/204', expectStatus: 204 },
    { name: 'app 500', path: '/status/500', expectStatus: 500 },
    { name: 'app 503 + Retry-After', path: '/status/503', expectStatus: 503 },
    { name: 'PUT', method: 'PUT', path: '/method', body: 'x', expectStatus: 200 },
    { name: 'DELETE', method: 'DELETE', path: '/method', expectStatus: 200 },
    { name: 'PATCH', method: 'PATCH', path: '/method', body: '{}', expectStatus: 200 },
    { name: 'OPTIONS (auto Allow)', method: 'OPTIONS', path: '/json', expectStatus: 200 },
    { name: 'unknown route', path: '/nowhere', expectStatus: 404 },
    { name: 'unknown method', method: 'POST', path: '/json', expectStatus: 404 },
    { name: 'cacheable once', path: '/cached', expectStatus: 200 },
    { name: 'cacheable twice', path: '/cached', expectStatus: 200 },
    { name: 'vary en', path: '/vary', headers: { 'accept-language': 'en' }, expectStatus: 200 },
    { name: 'vary fr', path: '/vary', headers: { 'accept-language': 'fr' }, expectStatus: 200 },
    { name: 'query string', path: '/json?a=1&b[]=2', expectStatus: 200 },
  ];
  if (version === 5)
    rows.push({ name: 'async rejected (native, Express 5)', path: '/errors/async-native', expectStatus: 422 });
  return rows;
}
