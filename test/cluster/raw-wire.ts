// Raw TCP for what a well-behaved HTTP client refuses to send (control characters in the request
// line, unknown methods, huge headers, slow or truncated requests) and for bytes on the peer port.

import { connect, type Socket } from 'node:net';
import { now, type Endpoint } from './http-probe.js';

export interface RawAnswer {
  /** Parsed from the status line, when an HTTP answer came back. */
  readonly status?: number;
  readonly code?: string;
  readonly text: string;
  /** The server closed the connection (FIN or RST) before our deadline. */
  readonly closed: boolean;
  readonly error?: string;
  readonly ms: number;
}

export interface RawOptions {
  readonly timeoutMs: number;
  /** Half-close after writing (a truncated request). */
  readonly endAfterWrite?: boolean;
  /** Write these pieces one by one, `delayMs` apart (a slow client), unless the server answers first. */
  readonly delayMs?: number;
}

function parse(text: string): { status?: number; code?: string } {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  if (match === null) return {};
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  let code: string | undefined;
  try { code = (JSON.parse(body) as { code?: string }).code; } catch { /* not JSON */ }
  return { status: Number(match[1]), code };
}

/** Sends `pieces` on a fresh connection and collects whatever comes back until close or the deadline. */
export function rawSend(host: string, port: number, pieces: readonly (string | Buffer)[], options: RawOptions): Promise<RawAnswer & { readonly bytes: Buffer }> {
  return new Promise((resolve) => {
    const started = now();
    const socket: Socket = connect({ host, port });
    const received: Buffer[] = [];
    let closed = false;
    let error: string | undefined;
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const bytes = Buffer.concat(received);
      const text = bytes.toString('latin1');
      resolve({ ...parse(text), text, bytes, closed, ...(error ? { error } : {}), ms: now() - started });
    };
    const timer = setTimeout(finish, options.timeoutMs);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', (e) => { error = e.message; });
    socket.on('close', () => { closed = true; finish(); });
    socket.on('end', () => { closed = true; finish(); });
    socket.once('connect', async () => {
      for (let i = 0; i < pieces.length; i++) {
        if (settled || received.length > 0 || socket.destroyed) break;
        if (!socket.write(pieces[i])) await new Promise<void>((r) => socket.once('drain', () => r()));
        if (options.delayMs !== undefined && i + 1 < pieces.length) await new Promise<void>((r) => setTimeout(r, options.delayMs));
      }
      if (options.endAfterWrite && !socket.destroyed) socket.end();
    });
  });
}

export function rawHttp(endpoint: Endpoint, pieces: readonly (string | Buffer)[], options: RawOptions): Promise<RawAnswer> {
  return rawSend(endpoint.host, endpoint.port, pieces, options);
}

/** Opens `count` connections and keeps them idle; `closedByServer` counts those the server ended. */
export async function openIdle(host: string, port: number, count: number): Promise<{ sockets: Socket[]; closedByServer: () => number; opened: number; close: () => void }> {
  const sockets: Socket[] = [];
  let serverClosed = 0;
  let opened = 0;
  await Promise.all(Array.from({ length: count }, () => new Promise<void>((resolve) => {
    const socket = connect({ host, port });
    sockets.push(socket);
    let counted = false;
    socket.on('error', () => {});
    socket.once('connect', () => { opened++; resolve(); });
    socket.on('close', () => {
      if (!counted && !(socket as Socket & { ownClose?: boolean }).ownClose) { counted = true; serverClosed++; }
      resolve();
    });
  })));
  return {
    sockets,
    opened,
    closedByServer: () => serverClosed,
    close: () => {
      for (const socket of sockets) {
        (socket as Socket & { ownClose?: boolean }).ownClose = true;
        socket.destroy();
      }
    },
  };
}
