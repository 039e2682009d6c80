// One HTTP exchange with a node or the gateway, on a fresh connection (a killed or paused process
// cannot strand a pooled socket), that says precisely how far it got: refused before anything was
// sent, sent and then lost, or answered. The fault tests need that to tell "definitely not applied"
// from "outcome unknown".

import { request } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface Endpoint {
  readonly name: string;
  readonly host: string;
  readonly port: number;
}

export type Exchange =
  | { readonly kind: 'answer'; readonly status: number; readonly body: unknown; readonly text: string; readonly headers: Record<string, string | string[] | undefined> }
  /** The connection failed before it was established: the request never left. */
  | { readonly kind: 'not-sent'; readonly error: string }
  /** Connected (so the request may have been read), then no complete answer. */
  | { readonly kind: 'lost'; readonly error: string };

export interface ExchangeOptions {
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  readonly timeoutMs: number;
  /** Called once the connection is up and the whole request has been handed to the kernel. */
  readonly onSent?: () => void;
}

export function exchange(endpoint: Endpoint, method: string, path: string, options: ExchangeOptions): Promise<Exchange> {
  return new Promise((resolve) => {
    let connected = false;
    let settled = false;
    const done = (result: Exchange): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const headers: Record<string, string | number> = { ...options.headers };
    if (options.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      headers['content-length'] = Buffer.byteLength(options.body);
    }
    const req = request({ host: endpoint.host, port: endpoint.port, method, path, agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try { body = JSON.parse(text); } catch { /* keep the text */ }
        done({ kind: 'answer', status: res.statusCode ?? 0, body, text, headers: res.headers });
      });
      res.on('error', (error) => done({ kind: 'lost', error: error.message }));
      res.on('aborted', () => done({ kind: 'lost', error: 'response aborted' }));
    });
    // One deadline for connect, send and answer; a paused process accepts (the kernel does) but never answers.
    const timer = setTimeout(() => {
      done(connected ? { kind: 'lost', error: `no answer within ${options.timeoutMs} ms` } : { kind: 'not-sent', error: `no connection within ${options.timeoutMs} ms` });
      req.destroy();
    }, options.timeoutMs);
    let finished = false;
    const maybeSent = (): void => {
      if (connected && finished) options.onSent?.();
    };
    req.on('socket', (socket) => {
      if (!socket.connecting) connected = true;
      else socket.once('connect', () => { connected = true; maybeSent(); });
    });
    req.on('finish', () => { finished = true; maybeSent(); });
    req.on('error', (error) => done(connected ? { kind: 'lost', error: error.message } : { kind: 'not-sent', error: error.message }));
    req.end(options.body);
  });
}

/** The error code of a JSON error answer, or undefined. */
export function errorCode(body: unknown): string | undefined {
  const code = (body as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function now(): number {
  return performance.now();
}
