/** A raw node:http client for the correctness checks (no keep-alive, no retries). */
import http from 'node:http';

/**
 * @param {string} url
 * @param {{ method?: string, headers?: Record<string,string>, body?: string, timeout?: number }} [options]
 * @returns {Promise<{ status: number, headers: import('node:http').IncomingHttpHeaders, text: string, json(): any }>}
 */
export function request(url, { method = 'GET', headers = {}, body, timeout = 5000 } = {}) {
  return new Promise((resolve, reject) => {
    const allHeaders = { ...headers };
    if (body !== undefined) {
      allHeaders['content-type'] ??= 'application/json';
      allHeaders['content-length'] = String(Buffer.byteLength(body));
    }
    const req = http.request(url, { method, headers: allHeaders, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text,
          json() {
            return JSON.parse(text);
          },
        });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`${method} ${url}: no answer in ${timeout} ms`)));
    req.on('error', (error) => {
      // A server that answers 413 before reading the whole body may reset the socket
      // while we still write: report the answer if it came, otherwise the error.
      reject(error);
    });
    if (body !== undefined) req.end(body);
    else req.end();
  });
}
