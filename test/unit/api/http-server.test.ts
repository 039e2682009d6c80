// The HTTP server against slow clients, on real sockets (127.0.0.1, port 0): a client that never
// finishes its headers, one that connects and says nothing, and one whose body trickles are each
// answered 408 REQUEST_TIMEOUT in JSON and disconnected within a bounded time, while other clients
// are served meanwhile.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import type { DeleteOutcome, HealthReport, KvBackend, KvRecord } from '../../../src/api/backend.js';
import { ApiHttpServer, CONNECTIONS_CHECK_INTERVAL_MS, DEFAULT_HEADERS_TIMEOUT_MS } from '../../../src/api/http-server.js';
import { ApiError, ERROR_CATALOGUE } from '../../../src/common/errors.js';
import { silentLogger } from '../../../src/common/logger.js';
import { ClusterBackendStub } from './cluster-backend-stub.js';

class TinyBackend extends ClusterBackendStub implements KvBackend {
  readonly maxValueBytes = 100;
  readonly puts: string[] = [];
  async put(key: string, value: string): Promise<KvRecord> {
    this.puts.push(key);
    return { key, value, createRevision: 2, modRevision: 2, version: 1, revision: 2 };
  }
  async delete(key: string): Promise<DeleteOutcome> { return { key, deleted: false, revision: 1 }; }
  async get(): Promise<KvRecord | null> { throw new ApiError('KEY_NOT_FOUND'); }
  async health(): Promise<HealthReport> { return { healthy: true, body: { status: 'healthy' } }; }
  async clusterStatus(): Promise<unknown> { return {}; }
}

/** Slack for a busy two-core machine on top of the deadline and node:http's checking interval. */
const SLACK_MS = 2000;

async function startServer(t: { after: (fn: () => Promise<void>) => void }, options: { headersTimeoutMs?: number; requestTimeoutMs?: number } = {}): Promise<{ port: number; backend: TinyBackend }> {
  const backend = new TinyBackend();
  const server = new ApiHttpServer(backend, { host: '127.0.0.1', port: 0, logger: silentLogger, ...options });
  const address = await server.listen();
  t.after(() => server.close());
  return { port: address.port, backend };
}

interface Ended {
  readonly text: string;
  /** When the server ended its side (its answer complete). */
  readonly ms: number;
}

/**
 * Connects, writes `first`, then one byte of `trickle` every 100 ms; resolves with what it received
 * once the server has ended its side, and (when trickling) also dropped the connection, so that the
 * bytes still being sent are refused. The client never ends its own side (allowHalfOpen): a server
 * that only half-closed would leave the connection held. Fails past `deadlineMs`.
 */
async function slowClient(port: number, first: string, trickle: string | null, deadlineMs: number): Promise<Ended> {
  const socket: Socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const started = performance.now();
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  if (first !== '') socket.write(first);
  const dripping = trickle === null ? undefined : setInterval(() => {
    if (socket.writable) socket.write(trickle);
  }, 100);
  let endedMs = Infinity;
  const ended = new Promise<void>((resolve) => {
    socket.once('end', () => {
      endedMs = performance.now() - started;
      resolve();
    });
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let deadline: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    deadline = setTimeout(() => reject(new Error(`the server did not end the connection within ${deadlineMs} ms`)), deadlineMs);
  });
  try {
    await Promise.race([ended, expired]);
    if (trickle !== null) await Promise.race([closed, expired]);
  } finally {
    clearInterval(dripping);
    clearTimeout(deadline);
    socket.destroy();
  }
  return { text: Buffer.concat(chunks).toString('utf8'), ms: endedMs };
}

function assertTimeoutAnswer(ended: Ended, what: string): void {
  assert.match(ended.text, /^HTTP\/1\.1 408 /, `${what}: a 408 status line, got ${JSON.stringify(ended.text.slice(0, 80))}`);
  assert.match(ended.text, /\r\ncontent-type: application\/json\r\n/i);
  const body = JSON.parse(ended.text.slice(ended.text.indexOf('\r\n\r\n') + 4)) as { code?: string; error?: string };
  assert.equal(body.code, 'REQUEST_TIMEOUT');
  assert.equal(ERROR_CATALOGUE.REQUEST_TIMEOUT.status, 408, 'the code is documented with status 408');
  assert.equal(typeof body.error, 'string');
}

async function getHealth(port: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/health`);
  await response.arrayBuffer();
  return response.status;
}

test('a client that never finishes its headers gets 408 REQUEST_TIMEOUT within the headers deadline, others are served meanwhile', async (t) => {
  const headersTimeoutMs = 1000;
  const { port } = await startServer(t, { headersTimeoutMs });
  const slow = slowClient(port, 'GET /kv/a HTTP/1.1\r\nHost: x\r\nX-Slow: ', 'a', headersTimeoutMs + CONNECTIONS_CHECK_INTERVAL_MS + SLACK_MS);
  assert.equal(await getHealth(port), 200, 'a normal request is served while the slow client holds its connection');
  const ended = await slow;
  t.diagnostic(`slow headers cut after ${Math.round(ended.ms)} ms (headers deadline ${headersTimeoutMs} ms)`);
  assertTimeoutAnswer(ended, 'slow headers');
  assert.ok(ended.ms >= headersTimeoutMs - 50, `not cut before the deadline (${Math.round(ended.ms)} ms)`);
});

test('by default, slow headers are cut within a few seconds', async (t) => {
  const { port } = await startServer(t);
  const bound = DEFAULT_HEADERS_TIMEOUT_MS + CONNECTIONS_CHECK_INTERVAL_MS + SLACK_MS;
  assert.ok(bound <= 10_000, 'the default bound is a few seconds');
  const ended = await slowClient(port, 'PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n', 'X', bound);
  t.diagnostic(`cut after ${Math.round(ended.ms)} ms (default headers deadline ${DEFAULT_HEADERS_TIMEOUT_MS} ms)`);
  assertTimeoutAnswer(ended, 'slow headers, default settings');
});

test('a connection that says nothing is answered 408 and closed after the headers deadline', async (t) => {
  const headersTimeoutMs = 800;
  const { port } = await startServer(t, { headersTimeoutMs });
  const ended = await slowClient(port, '', null, headersTimeoutMs + CONNECTIONS_CHECK_INTERVAL_MS + SLACK_MS);
  assertTimeoutAnswer(ended, 'idle connection');
});

test('a body that trickles is answered 408 at the request deadline and never reaches the backend', async (t) => {
  const requestTimeoutMs = 1500;
  const { port, backend } = await startServer(t, { headersTimeoutMs: 1000, requestTimeoutMs });
  const ended = await slowClient(port, 'PUT /kv/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"value":"', 's', requestTimeoutMs + CONNECTIONS_CHECK_INTERVAL_MS + SLACK_MS);
  t.diagnostic(`slow body cut after ${Math.round(ended.ms)} ms (request deadline ${requestTimeoutMs} ms)`);
  assertTimeoutAnswer(ended, 'slow body');
  assert.deepEqual(backend.puts, [], 'nothing was written');
});

test('malformed HTTP is still 400 BAD_REQUEST and oversized headers 431, in JSON', async (t) => {
  const { port } = await startServer(t);
  const bad = await slowClient(port, 'FROB /kv/a HTTP/1.1\r\nHost: x\r\n\r\n', null, 5000);
  assert.match(bad.text, /^HTTP\/1\.1 400 /);
  assert.match(bad.text, /"code":"BAD_REQUEST"/);
  const huge = await slowClient(port, `GET /kv/a HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`, null, 5000);
  assert.match(huge.text, /^HTTP\/1\.1 431 /);
  assert.match(huge.text, /"code":"TOO_LARGE"/);
});
