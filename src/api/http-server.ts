// Puts the API router on node:http: buffers bodies up to the limit, enforces timeouts against slow
// or stalled clients, and never lets an error escape as a crash or a stack trace.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApiError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { KvBackend } from './backend.js';
import { errorResponse, maxBodyBytes, routeApiRequest, type ApiResponse } from './router.js';

export interface HttpServerOptions {
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  /** A whole request (headers and body) must arrive within this time. */
  readonly requestTimeoutMs?: number;
  readonly maxConnections?: number;
}

export class ApiHttpServer {
  private readonly server: Server;

  constructor(private readonly backend: KvBackend, private readonly options: HttpServerOptions) {
    this.server = createServer({
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      // Answered by handle() with a JSON error instead of node:http's bare 400.
      requireHostHeader: false,
      headersTimeout: 10_000,
      keepAliveTimeout: 65_000,
      maxHeaderSize: 16 * 1024,
    }, (request, response) => this.handle(request, response));
    this.server.maxConnections = options.maxConnections ?? 10_000;
    this.server.on('clientError', (error, socket) => {
      // Malformed HTTP, oversized headers (431), timeouts: answer if the socket still can.
      if (socket.writable) {
        const status = (error as { code?: string }).code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
        const body = JSON.stringify({ error: status === 431 ? 'Request headers are too large.' : 'Malformed HTTP request.', code: status === 431 ? 'TOO_LARGE' : 'BAD_REQUEST' });
        socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
      } else {
        socket.destroy();
      }
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
