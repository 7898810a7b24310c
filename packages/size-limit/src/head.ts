/**
 * Limits on the request head: the request target (414, RFC 9110 §15.5.15) and the header
 * fields (431, RFC 6585 §5). The head is already in memory when any middleware runs, so
 * these are checked at once; a passing request costs two comparisons and one loop over
 * `rawHeaders`, with no allocation.
 */
import type { IncomingMessage } from 'node:http';
import { SizeLimitError } from './errors.js';
import type { SizeLimitConfig } from './options.js';

/**
 * Checks the URL length, header count and header bytes of `req`.
 *
 * Node's HTTP parser refuses a head over its own `maxHeaderSize` (16 KiB by default;
 * `--max-http-header-size` or `http.createServer({ maxHeaderSize })`) with a bare 431
 * before any middleware runs; these checks apply below that.
 *
 * @returns the error to answer with, or `undefined` when the head is within the limits
 */
export function checkHead(req: IncomingMessage, config: SizeLimitConfig): SizeLimitError | undefined {
  const url = req.url;
  if (url !== undefined && url.length > config.maxUrlLength) {
    const limit = config.maxUrlLength;
    const detail = `The request target is ${url.length} characters long; the limit is ${limit}.`;
    return new SizeLimitError('URI_TOO_LONG', detail, { limit, received: url.length });
  }
  const raw = req.rawHeaders;
  if (raw.length > config.maxRawHeaders) {
    const limit = config.maxHeaderCount;
    const count = raw.length / 2;
    const detail = `The request has ${count} header fields; the limit is ${limit}.`;
    return new SizeLimitError('HEADERS_TOO_LARGE', detail, { limit, received: count, measure: 'count' });
  }
  // Each field is `name: value\r\n` on the wire: 4 bytes besides the name and the value.
  let bytes = raw.length * 2;
  for (let i = 0; i < raw.length; i++) bytes += (raw[i] as string).length;
  if (bytes > config.maxHeaderBytes) {
    const limit = config.maxHeaderBytes;
    const detail = `The request header fields take ${bytes} bytes; the limit is ${limit}.`;
    return new SizeLimitError('HEADERS_TOO_LARGE', detail, { limit, received: bytes, measure: 'bytes' });
  }
  return undefined;
}
