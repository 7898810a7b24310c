/**
 * Reads the small JSON body of a dashboard action, with a hard size limit.
 *
 * If a body parser already ran (`app.use(express.json())` before the dashboard), the
 * stream is spent and `req.body` holds the result: that is used as it is.
 */
import type { IncomingMessage } from 'node:http';
import { HttpProblemError } from '@perfstack/core';

type ParsedRequest = IncomingMessage & { body?: unknown; _body?: unknown };

function tooLarge(limit: number): HttpProblemError {
  return new HttpProblemError({
    code: 'PAYLOAD_TOO_LARGE',
    detail: `Action bodies are limited to ${limit} bytes.`,
    extensions: { limit },
    headers: { Connection: 'close' },
  });
}

function badJson(detail: string): HttpProblemError {
  return new HttpProblemError({ code: 'BAD_REQUEST', detail });
}

/**
 * Reads and parses the body.
 *
 * @param req the request
 * @param limit largest accepted body in bytes
 * @returns the parsed JSON value (`{}` for an empty body)
 * @throws {HttpProblemError} 413 over the limit, 400 for malformed JSON
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const parsed = req as ParsedRequest;
  if (parsed.body !== undefined && (parsed._body === true || req.readableEnded || req.complete)) {
    return parsed.body;
  }
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    req.resume();
    throw tooLarge(limit);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve();
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw badJson('The body is not valid JSON.');
  }
}
