// A minimal JSON-over-HTTP exchange for the node's own use (asking a member to be added, JOIN):
// the server layer does not import the client package, which sits above it.

import { request } from 'node:http';

export interface JsonAnswer {
  readonly status: number;
  readonly body: unknown;
}

/** Bytes of answer read at most: a member list, not a data stream. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

export function httpJson(baseUrl: string, method: string, path: string, body: unknown, timeoutMs: number): Promise<JsonAnswer> {
  const url = new URL(path, baseUrl);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({
      host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80), method, path: `${url.pathname}${url.search}`, timeout: timeoutMs, agent: false,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    }, (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > MAX_ANSWER_BYTES) req.destroy(new Error('the answer is too large'));
        else chunks.push(chunk);
      });
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try { parsed = JSON.parse(text); } catch { /* keep the text */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The error sentence and code of a JSON error answer, for logs. */
export function describeAnswer(answer: JsonAnswer): string {
  const body = answer.body as { code?: unknown; error?: unknown } | null;
  if (body !== null && typeof body === 'object' && typeof body.code === 'string') return `${answer.status} ${body.code}: ${String(body.error)}`;
  return `HTTP ${answer.status}`;
}
