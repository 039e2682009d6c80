// Puts the API router on node:http: buffers bodies up to the limit, enforces timeouts against slow
// or stalled clients, and never lets an error escape as a crash or a stack trace.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApiError, ERROR_CATALOGUE, type ErrorCode } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { KvBackend } from './backend.js';
import { errorResponse, maxBodyBytes, routeApiRequest, type ApiResponse } from './router.js';

export interface HttpServerOptions {
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  /** A whole request (headers and body) must arrive within this time. Default 30 s. */
  readonly requestTimeoutMs?: number;
  /**
   * The headers must arrive within this time of the connection or of the previous response (at most
   * requestTimeoutMs). Default 5 s: a slow-header client holds a connection no longer than that.
   */
  readonly headersTimeoutMs?: number;
  readonly maxConnections?: number;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_HEADERS_TIMEOUT_MS = 5_000;
/**
 * How often node:http looks for connections past those deadlines. Its default is 30 s, which let a
 * slow client outlive its deadline by up to that much; the check walks only connections with a request
 * in progress, so doing it twice a second costs little.
 */
export const CONNECTIONS_CHECK_INTERVAL_MS = 500;

/** A client-error answer not flushed within this time (a client that does not read) is cut. */
const ANSWER_FLUSH_MS_MAX = 2_000;

/** What node:http's client errors are answered with, when the socket can still take an answer. */
function clientErrorAnswer(errorCode: string | undefined): { status: number; reason: string; code: ErrorCode; sentence: string } {
  switch (errorCode) {
    case 'HPE_HEADER_OVERFLOW': return { status: 431, reason: 'Request Header Fields Too Large', code: 'TOO_LARGE', sentence: 'Request headers are too large.' };
    case 'ERR_HTTP_REQUEST_TIMEOUT': return { status: 408, reason: 'Request Timeout', code: 'REQUEST_TIMEOUT', sentence: ERROR_CATALOGUE.REQUEST_TIMEOUT.message };
    default: return { status: 400, reason: 'Bad Request', code: 'BAD_REQUEST', sentence: 'Malformed HTTP request.' };
  }
}

/** node:http's own test before it answers a client error: no response of ours has begun on it. */
function canAnswer(socket: Socket): boolean {
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  return socket.writable && (inFlight === undefined || inFlight === null || inFlight.headersSent !== true);
}

export class ApiHttpServer {
  private readonly server: Server;

  constructor(private readonly backend: KvBackend, private readonly options: HttpServerOptions) {
    const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const headersTimeoutMs = Math.min(options.headersTimeoutMs ?? DEFAULT_HEADERS_TIMEOUT_MS, requestTimeoutMs);
    if (!(headersTimeoutMs > 0)) throw new RangeError('the HTTP timeouts must be positive');
    this.server = createServer({
      requestTimeout: requestTimeoutMs,
      // Answered by handle() with a JSON error instead of node:http's bare 400.
      requireHostHeader: false,
      headersTimeout: headersTimeoutMs,
      connectionsCheckingInterval: CONNECTIONS_CHECK_INTERVAL_MS,
      keepAliveTimeout: 65_000,
      maxHeaderSize: 16 * 1024,
    }, (request, response) => this.handle(request, response));
    this.server.maxConnections = options.maxConnections ?? 10_000;
    this.server.on('clientError', (error, socket: Socket) => {
      // Malformed HTTP, oversized headers (431), headers or request too slow (408): answer with a
      // JSON error if the socket still can take one, then close; else just close.
      if (!canAnswer(socket)) {
        socket.destroy();
        return;
      }
      const answer = clientErrorAnswer((error as { code?: string }).code);
      const body = JSON.stringify({ error: answer.sentence, code: answer.code });
      socket.end(`HTTP/1.1 ${answer.status} ${answer.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      // end() only half-closes: a client that neither reads nor closes would keep the connection.
      // Close it once the answer is handed to the kernel, and in any case after a bound.
      socket.once('finish', () => socket.destroy());
      const bound = setTimeout(() => socket.destroy(), ANSWER_FLUSH_MS_MAX);
      bound.unref();
      socket.once('close', () => clearTimeout(bound));
    });
  }

  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    if (request.httpVersion === '1.1' && request.headers.host === undefined) {
      this.send(response, errorResponse(new ApiError('BAD_REQUEST', 'An HTTP/1.1 request needs a Host header.')), true);
      request.resume();
      return;
    }
    const limit = maxBodyBytes(this.backend.maxValueBytes);
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > limit) {
      this.send(response, errorResponse(new ApiError('TOO_LARGE', 'The body is over the size limit.')), true);
      request.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    let aborted = false;
    request.on('data', (chunk: Buffer) => {
      if (aborted) return;
      received += chunk.length;
      if (received > limit) {
        aborted = true;
        this.send(response, errorResponse(new ApiError('TOO_LARGE', 'The body is over the size limit.')), true);
        return;
      }
      chunks.push(chunk);
    });
    request.on('error', () => { aborted = true; });
    request.on('end', () => {
      if (aborted) return;
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      routeApiRequest(this.backend, { method: request.method ?? 'GET', url: request.url ?? '/', headers: request.headers, body })
        .then((result) => this.send(response, result, false, request.method === 'HEAD'))
        .catch((error: unknown) => {
          this.options.logger.error('unhandled error in request', { error });
          this.send(response, errorResponse(error), false);
        });
    });
  }

  private send(response: ServerResponse, result: ApiResponse, closeAfter: boolean, headOnly = false): void {
    if (response.headersSent || response.destroyed) return;
    if (result.stream !== undefined) {
      this.sendStream(response, result);
      return;
    }
    const payload = JSON.stringify(result.body);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload),
      ...result.headers,
    };
    if (closeAfter) headers.connection = 'close';
    response.writeHead(result.status, headers);
    response.end(headOnly ? undefined : payload);
  }

  /** A streamed body honours the socket's backpressure; a failure part-way cuts the connection,
   * so the reader sees a short file (its checksum fails) rather than a silently truncated one. */
  private sendStream(response: ServerResponse, result: ApiResponse): void {
    const stream = result.stream;
    if (stream === undefined) return;
    response.writeHead(result.status, { 'content-type': stream.contentType, ...result.headers });
    pipeline(Readable.from(stream.chunks, { objectMode: false }), response).catch((error: unknown) => {
      this.options.logger.warn('a streamed response failed part-way', { error: (error as Error).message });
      response.destroy();
    });
  }
}
