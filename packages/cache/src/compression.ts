/**
 * Stored-body compression with node:zlib. Bodies are compressed once, when stored
 * (asynchronously, off the request path), and sent as they are to clients that accept
 * the coding; the rare client that does not gets them decompressed.
 *
 * Brotli runs at quality 5: within a few percent of the default quality 11 on JSON and
 * HTML, at a small fraction of the CPU.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';

const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);

/** Compresses `body`; resolves undefined when compression does not save at least 10%. */
export async function compress(body: Buffer, coding: 'br' | 'gzip'): Promise<Buffer | undefined> {
  const out =
    coding === 'br'
      ? await brotli(body, {
          params: {
            [zlib.constants.BROTLI_PARAM_QUALITY]: 5,
            [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length,
          },
        })
      : await gzip(body, { level: 6 });
  return out.length < body.length * 0.9 ? out : undefined;
}

/** Decompresses a stored body for a client that does not accept its coding. */
export function decompress(body: Buffer, coding: 'br' | 'gzip'): Buffer {
  return coding === 'br' ? zlib.brotliDecompressSync(body) : zlib.gunzipSync(body);
}
