/**
 * Range requests answered from a stored complete 200 (RFC 9110 §14): one range → 206 with
 * `Content-Range`; several → 206 `multipart/byteranges` (§14.6); unsatisfiable → 416 with
 * `Content-Range: bytes *\/length` (§15.5.17); `If-Range` (§13.1.5) that does not match
 * the entry → the whole 200. Parsing is jshttp's range-parser (the one Express's
 * `send` uses). Ranges are over the identity body: a body stored compressed is
 * decompressed for them.
 */
import { randomBytes } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import rangeParser from 'range-parser';
import { decompress } from './compression.js';
import type { Entry } from './entry.js';
import { parseHttpDate } from './freshness.js';
import { headerString } from './http-semantics.js';

/** `bytes=` then a comma-separated list of `first-last`, `first-` or `-suffix` (RFC 9110 §14.1.2). */
const BYTE_RANGES = /^bytes=[ \t]*(?:\d+-\d*|-\d+)(?:[ \t]*,[ \t]*(?:\d+-\d*|-\d+))*[ \t]*$/i;

/** A `first-last` with last < first makes the whole ranges-specifier invalid (§14.1.1): ignored. */
function hasInvalidSpec(range: string): boolean {
  for (const spec of range.slice(range.indexOf('=') + 1).split(',')) {
    const [first, last] = spec.trim().split('-');
    if (first !== '' && last !== '' && Number(last) < Number(first)) return true;
  }
  return false;
}

/** True when `If-Range` lets the range apply: a strong ETag equal to the entry's, or its exact Last-Modified date. */
function ifRangeMatches(header: unknown, entry: Entry): boolean {
  const value = headerString(header)?.trim();
  if (value === undefined) return true;
  if (value.startsWith('"') || value.startsWith('W/')) {
    // Strong comparison (§8.8.3.2): weak tags never match.
    const etag = entry.etag;
    return etag !== undefined && !etag.startsWith('W/') && !value.startsWith('W/') && etag === value;
  }
  const date = parseHttpDate(value);
  const stored = parseHttpDate(entry.headers['last-modified']);
  // A date validator is strong only when Last-Modified is at least a second older than Date (§8.8.2.2).
  const sent = parseHttpDate(entry.headers.date);
  return date !== undefined && stored !== undefined && date === stored && sent !== undefined && sent - stored >= 1000;
}

/** A range answer: status, headers and body to write. */
export interface RangeAnswer {
  readonly status: 206 | 416;
  readonly headers: OutgoingHttpHeaders;
  readonly body: Buffer | undefined;
}

/**
 * The answer to a `Range` (and `If-Range`) from `entry`, or undefined to send the whole
 * entry (no usable range, `If-Range` mismatch, not a 200, not a GET, malformed header).
 */
export function rangeAnswer(
  method: string | undefined,
  rangeHeader: unknown,
  ifRangeHeader: unknown,
  entry: Entry,
): RangeAnswer | undefined {
  if (entry.status !== 200 || method !== 'GET') return undefined;
  const range = headerString(rangeHeader);
  if (range === undefined || range.length > 1024) return undefined;
  // A Range that is not valid bytes-range syntax is ignored (§14.2 allows ignoring), not a 416.
  if (!BYTE_RANGES.test(range) || hasInvalidSpec(range)) return undefined;
  if (!ifRangeMatches(ifRangeHeader, entry)) return undefined;
  const body = entry.encoding === undefined ? entry.body : decompress(entry.body, entry.encoding);
  const size = body.length;
  const ranges = rangeParser(size, range, { combine: true });
  if (ranges === -2 || (ranges !== -1 && ranges.type !== 'bytes')) return undefined;
  const headers: OutgoingHttpHeaders = {};
  for (const name of Object.keys(entry.headers)) headers[name] = entry.headers[name] as string | string[];
  if (ranges === -1) {
    for (const name of ['content-type', 'content-encoding', 'etag', 'last-modified', 'content-length']) {
      delete headers[name];
    }
    headers['content-range'] = `bytes */${size}`;
    headers['content-length'] = '0';
    return { status: 416, headers, body: undefined };
  }
  if (ranges.length === 1) {
    const { start, end } = ranges[0] as { start: number; end: number };
    headers['content-range'] = `bytes ${start}-${end}/${size}`;
    headers['content-length'] = String(end - start + 1);
    return { status: 206, headers, body: body.subarray(start, end + 1) };
  }
  const boundary = randomBytes(12).toString('hex');
  const type = headerString(entry.headers['content-type']);
  const parts: Buffer[] = [];
  for (const { start, end } of ranges) {
    let head = `--${boundary}\r\n`;
    if (type !== undefined) head += `Content-Type: ${type}\r\n`;
    head += `Content-Range: bytes ${start}-${end}/${size}\r\n\r\n`;
    parts.push(Buffer.from(head), body.subarray(start, end + 1), Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  const payload = Buffer.concat(parts);
  headers['content-type'] = `multipart/byteranges; boundary=${boundary}`;
  headers['content-length'] = String(payload.length);
  return { status: 206, headers, body: payload };
}
